# Compiler flags shared by common/ and every stage (DESIGN.md section 7).
#
#   make SAN=address,undefined   build with AddressSanitizer + UBSan
#   make SAN=thread              build with ThreadSanitizer
#
# The flags in use are written to build/.flags; when they change (say, a plain
# build followed by SAN=thread) every object is rebuilt, so a build directory
# never mixes sanitized and plain objects.

CC      ?= cc
SAN     ?=
CFLAGS  := -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -g -pthread \
           -D_POSIX_C_SOURCE=200809L
LDFLAGS := -pthread

ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

B := build

.DEFAULT_GOAL := all

$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@

FORCE:
.PHONY: FORCE
