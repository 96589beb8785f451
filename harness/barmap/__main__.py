from barmap.cli.main import main

raise SystemExit(main())
