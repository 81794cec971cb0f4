# The build of one stage, included by vX.Y/Makefile. Every stage builds the
# same way, so `make diff` between two stages never shows build noise:
#
#   build/libzinc.a   the framework, zinc/*.c, plus the common/ sources
#   build/server      demo/server.c linked against it
#   build/client      demo/client.c linked against it

# A stage sits beside common/; a copy elsewhere (a learner's lab, made by
# tools/lab.py) sets COMMON to where common/ is before including this file.
COMMON ?= ../common
include $(COMMON)/flags.mk

CFLAGS += -I. -I$(COMMON)

# The stage's version is the name of its directory ("v0.4"), written down
# here once instead of in every file that shows it. Kept out of CFLAGS (and
# so out of build/.flags, which tests reuse to build against libzinc.a).
VERSION_FLAG := -DZN_VERSION='"$(notdir $(CURDIR))"'

ZINC_SRCS   := $(wildcard zinc/*.c)
COMMON_SRCS := $(wildcard $(COMMON)/*.c)
OBJS := $(ZINC_SRCS:zinc/%.c=$(B)/zinc/%.o) \
        $(COMMON_SRCS:$(COMMON)/%.c=$(B)/common/%.o)
HDRS := $(wildcard zinc/*.h) $(wildcard $(COMMON)/*.h)

all: $(B)/server $(B)/client

$(B)/zinc/%.o: zinc/%.c $(HDRS) $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(VERSION_FLAG) -c $< -o $@

$(B)/common/%.o: $(COMMON)/%.c $(HDRS) $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libzinc.a: $(OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(B)/demo/%.o: demo/%.c $(HDRS) $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(VERSION_FLAG) -c $< -o $@

$(B)/server: $(B)/demo/server.o $(B)/libzinc.a
	$(CC) $^ $(LDFLAGS) -o $@

$(B)/client: $(B)/demo/client.o $(B)/libzinc.a
	$(CC) $^ $(LDFLAGS) -o $@

clean:
	rm -rf $(B)

.PHONY: all clean
