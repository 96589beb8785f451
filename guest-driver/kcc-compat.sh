#!/bin/sh
# Compiler wrapper for building against a kernel configured for a newer gcc
# (Debian 13's 6.12 was built with gcc-14; Debian 12 has gcc-12):
#   make KERNEL=trixie KCC=gcc-12   (the Makefile then runs: kcc-compat.sh gcc-12 ...)
# Options gcc-12 does not know are dropped or replaced by their older form.
cc=$1
shift
for a in "$@"; do
	shift
	case $a in
	-fmin-function-alignment=*) set -- "$@" "-falign-functions=${a#*=}" ;;
	-Wno-unterminated-string-initialization) ;;
	*) set -- "$@" "$a" ;;
	esac
done
exec "$cc" "$@"
