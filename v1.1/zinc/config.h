/*
 * config -- the global configuration, read from conf/zinc.json.
 *
 * zinx keeps its settings in one global object, GlobalObject, filled from a
 * JSON file before the server starts. zinc does the same with zn_global.
 * It is written once, in main(), before any thread exists, and only read
 * afterwards, so no thread needs a lock to read it.
 *
 * The keys keep zinx's names (DESIGN.md section 4):
 *
 *     Name            "ZincServerApp"  the server's name in log lines
 *     Version         ZN_VERSION       this stage (the directory's name,
 *                                      defined by common/stage.mk)
 *     Host            "127.0.0.1"      address to listen on
 *     TcpPort         8999             port; 0 lets the system choose
 *     MaxConn         12000            most connections (enforced in v0.9)
 *     MaxPacketSize   4096             largest message (enforced in v0.5);
 *                                      0 means no limit, at most 1 GiB
 *     MaxMsgChanLen   1024             replies a connection's outgoing
 *                                      channel holds (v0.7), 1 to 1048576;
 *                                      from v1.1 replies waiting that
 *                                      pause reading (writer.h)
 *     WorkerPoolSize  online CPUs      worker threads (v0.8), 0 to 1024;
 *                                      from v1.1 each an event loop, one
 *                                      per CPU unless set (zinx: 10), and
 *                                      0 serves everyone on the main thread
 *     MaxWorkerTaskLen 1024            requests one worker's queue holds
 *                                      (v0.8), 1 to 1048576; read but
 *                                      unused from v1.1: no queue
 *
 * Name and Version appear in log lines, so they may not hold control
 * characters: a newline in them could forge a "listening on" line.
 */
#ifndef ZN_CONFIG_H
#define ZN_CONFIG_H

#include <stdint.h>

#define ZN_CONFIG_PATH "conf/zinc.json"

/* The ceiling of MaxPacketSize: 1 GiB. */
#define ZN_MAX_PACKET_SIZE_LIMIT (1u << 30)

/* The ceiling of a queue's length (MaxMsgChanLen, MaxWorkerTaskLen). */
#define ZN_MAX_QUEUE_LEN (1u << 20)

/* The most workers (WorkerPoolSize). */
#define ZN_MAX_WORKERS 1024

struct zn_config {
    char name[64]; /* Name */
    char version[32]; /* Version */
    char host[64]; /* Host: a numeric IPv4 or IPv6 address */
    uint16_t tcp_port; /* TcpPort */
    int max_conn; /* MaxConn, at least 1 */
    uint32_t max_packet_size; /* MaxPacketSize; 0 means no limit */
    uint32_t max_msg_chan_len; /* MaxMsgChanLen */
    uint32_t worker_pool_size; /* WorkerPoolSize; 0: no workers */
    uint32_t max_worker_task_len; /* MaxWorkerTaskLen */
};

/* The configuration every module reads. Holds the defaults until loaded. */
extern struct zn_config zn_global;

/*
 * Load the configuration file at path into zn_global, on top of the
 * defaults. A missing file is not an error: the defaults stay and one log
 * line says so. Returns 0, or -EINVAL when the file cannot be read, is not
 * valid JSON, or holds a key of the wrong type or a value out of range; the
 * reason is logged as "FILE:LINE:COL: message" first. An unknown key is
 * logged as a warning and ignored. Call from main() before any thread
 * starts.
 */
int zn_config_load(const char *path);

#endif
