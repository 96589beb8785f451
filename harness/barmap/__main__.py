from barmap.cli import main

raise SystemExit(main())
