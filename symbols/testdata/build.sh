#!/bin/sh
# Rebuilds the test ELF files from fakepython.c. The committed copies were
# built on x86-64 with gcc 12.2.0 and GNU binutils 2.40 (Debian 12):
#   libpython3.12-fake.so           gcc -O1 -shared -fPIC, keeps .symtab
#   libpython3.12-fake-stripped.so  the same after strip --strip-all (.dynsym only)
# -z noseparate-code gives the classic two-segment layout (R E at file offset
# 0, then RW) and keeps the files small. The tests take addresses from the
# files themselves, so a rebuild with another toolchain is fine.
set -eu
cd "$(dirname "$0")"
gcc -O1 -shared -fPIC -Wl,--build-id=none -Wl,-z,noseparate-code \
	-o libpython3.12-fake.so fakepython.c
strip --strip-all -o libpython3.12-fake-stripped.so libpython3.12-fake.so
