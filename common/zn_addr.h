/*
 * zn_addr -- print a socket address the way people write it.
 */
#ifndef ZN_ADDR_H
#define ZN_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for "[IPv6]:port" and the terminating NUL. */
#define ZN_ADDR_STRLEN 64

/*
 * Write sa as "127.0.0.1:8999" (IPv4) or "[::1]:8999" (IPv6) into buf, which
 * holds size bytes (ZN_ADDR_STRLEN is always enough). Numeric only: it never
 * blocks on a DNS lookup. Returns buf; on failure buf holds "?".
 */
char *zn_addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                     size_t size);

/*
 * Parse a decimal TCP port, 0 to 65535, into *port. The whole string must be
 * digits: "80x", "", "-1" and "70000" are refused. Returns 0 or -EINVAL.
 */
int zn_addr_parse_port(const char *text, uint16_t *port);

/*
 * Connect to "HOST:PORT" (for IPv6, "[::1]:PORT") and return the connected
 * socket, or a negative errno: -EINVAL for a malformed address, otherwise
 * why the connection failed. Used by the demo clients.
 */
int zn_addr_dial(const char *hostport);

/*
 * zn_addr_dial(), giving up on each address after timeout_ms (negative:
 * no limit) with -ETIMEDOUT. The socket returned is blocking, as with
 * zn_addr_dial().
 */
int zn_addr_dial_timeout(const char *hostport, int timeout_ms);

#endif
