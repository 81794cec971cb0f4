#include "zinc/config.h"

#include "zn_json.h"
#include "zn_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

struct zn_config zn_global = {
    .name = "ZincServerApp",
    .version = ZN_VERSION,
    .host = "127.0.0.1", /* safe: "0.0.0.0" would open every interface */
    .tcp_port = 8999,
    .max_conn = 12000,
    .max_packet_size = 4096,
    .max_msg_chan_len = 1024,
    .worker_pool_size = 1, /* zn_config_load(): one per online CPU */
    .max_worker_task_len = 1024,
};

/* How a key's value is checked and where it is stored in zn_config. */
enum key_kind { KEY_STRING, KEY_HOST, KEY_U16, KEY_INT, KEY_U32 };

struct config_key {
    const char *name; /* the JSON key, zinx's spelling */
    enum key_kind kind; /* what the value must be */
    size_t offset; /* where it goes in struct zn_config */
    size_t size; /* KEY_STRING/KEY_HOST: room, with the NUL */
    long long min, max; /* integer kinds: the allowed range */
};

#define FIELD(f) offsetof(struct zn_config, f), sizeof(zn_global.f)

static const struct config_key keys[] = {
    {"Name", KEY_STRING, FIELD(name), 0, 0},
    {"Version", KEY_STRING, FIELD(version), 0, 0},
    {"Host", KEY_HOST, FIELD(host), 0, 0},
    {"TcpPort", KEY_U16, FIELD(tcp_port), 0, 65535},
    {"MaxConn", KEY_INT, FIELD(max_conn), 1, 1000000},
    {"MaxPacketSize", KEY_U32, FIELD(max_packet_size), 0,
     ZN_MAX_PACKET_SIZE_LIMIT},
    {"MaxMsgChanLen", KEY_U32, FIELD(max_msg_chan_len), 1, ZN_MAX_QUEUE_LEN},
    {"WorkerPoolSize", KEY_U32, FIELD(worker_pool_size), 0, ZN_MAX_WORKERS},
    {"MaxWorkerTaskLen", KEY_U32, FIELD(max_worker_task_len), 1,
     ZN_MAX_QUEUE_LEN},
};

/*
 * Check one value against its key and store it in *conf. Returns 0, or -1
 * after logging "PATH:LINE:COL: Key: what is wrong".
 */
static int set_key(struct zn_config *conf, const char *path,
                   const struct config_key *k, const struct zn_json *v)
{
    char *field = (char *)conf + k->offset;
    enum zn_json_type want = k->kind == KEY_STRING || k->kind == KEY_HOST
                                 ? ZN_JSON_STRING
                                 : ZN_JSON_NUMBER;
    unsigned char ip[16];
    long long n;

    if (v->type != want) {
        zn_error("%s:%d:%d: %s: expected %s, got %s", path, v->line, v->col,
                 k->name, want == ZN_JSON_STRING ? "a string" : "an integer",
                 zn_json_type_name(v->type));
        return -1;
    }
    if (want == ZN_JSON_STRING) {
        if (v->u.string.len >= k->size ||
            strlen(v->u.string.chars) != v->u.string.len) {
            zn_error("%s:%d:%d: %s: longer than %zu bytes or holds a NUL", path,
                     v->line, v->col, k->name, k->size - 1);
            return -1;
        }
        for (size_t i = 0; i < v->u.string.len; i++) {
            unsigned char ch = (unsigned char)v->u.string.chars[i];

            if (ch < 0x20 || ch == 0x7f) {
                zn_error("%s:%d:%d: %s: holds a control character", path,
                         v->line, v->col, k->name);
                return -1;
            }
        }
        if (k->kind == KEY_HOST &&
            inet_pton(AF_INET, v->u.string.chars, ip) != 1 &&
            inet_pton(AF_INET6, v->u.string.chars, ip) != 1) {
            zn_error("%s:%d:%d: %s: \"%s\" is not a numeric IPv4 or IPv6 "
                     "address",
                     path, v->line, v->col, k->name, v->u.string.chars);
            return -1;
        }
        memcpy(field, v->u.string.chars, v->u.string.len + 1);
        return 0;
    }

    n = v->u.number.int_value;
    if (!v->u.number.is_int || n < k->min || n > k->max) {
        zn_error("%s:%d:%d: %s: must be an integer from %lld to %lld", path,
                 v->line, v->col, k->name, k->min, k->max);
        return -1;
    }
    if (k->kind == KEY_U16)
        *(uint16_t *)(void *)field = (uint16_t)n;
    else if (k->kind == KEY_INT)
        *(int *)(void *)field = (int)n;
    else
        *(uint32_t *)(void *)field = (uint32_t)n;
    return 0;
}

/*
 * WorkerPoolSize when the file does not set it, from v1.1: one event loop
 * per online CPU, as nginx's `worker_processes auto`. Fewer leave cores
 * idle on a many-core machine; more only take turns on the same cores
 * (the chapter has the measurements).
 */
static uint32_t loops_per_cpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > ZN_MAX_WORKERS ? ZN_MAX_WORKERS : (uint32_t)n;
}

int zn_config_load(const char *path)
{
    struct zn_config conf = zn_global; /* fill a copy: all or nothing */
    struct zn_json_error err;
    struct zn_json *doc = zn_json_parse_file(path, &err);
    int rc = -EINVAL;

    conf.worker_pool_size = loops_per_cpu();
    if (doc == NULL && errno == ENOENT) {
        zn_info("config %s not found: using the defaults", path);
        zn_global = conf;
        goto done;
    }
    if (doc == NULL && err.line == 0) {
        zn_error("%s: %s", path, err.msg); /* cannot open, too large... */
        return -EINVAL;
    }
    if (doc == NULL) {
        zn_error("%s:%d:%d: invalid JSON: %s", path, err.line, err.col,
                 err.msg);
        return -EINVAL;
    }
    if (doc->type != ZN_JSON_OBJECT) {
        zn_error("%s:%d:%d: expected an object {...}, got %s", path, doc->line,
                 doc->col, zn_json_type_name(doc->type));
        goto out;
    }

    for (size_t i = 0; i < doc->u.object.len; i++) {
        const char *name = doc->u.object.keys[i];
        const struct zn_json *v = doc->u.object.values[i];
        size_t k = 0;

        while (k < sizeof(keys) / sizeof(keys[0]) &&
               strcmp(keys[k].name, name) != 0)
            k++;
        if (k == sizeof(keys) / sizeof(keys[0])) {
            zn_warn("%s:%d:%d: unknown key \"%s\" ignored", path, v->line,
                    v->col, name);
            continue;
        }
        if (set_key(&conf, path, &keys[k], v) < 0)
            goto out;
    }
    zn_global = conf;
done:
    zn_info("config: Name=\"%s\" Version=%s Host=%s TcpPort=%u MaxConn=%d "
            "MaxPacketSize=%u MaxMsgChanLen=%u WorkerPoolSize=%u "
            "MaxWorkerTaskLen=%u",
            zn_global.name, zn_global.version, zn_global.host,
            (unsigned)zn_global.tcp_port, zn_global.max_conn,
            (unsigned)zn_global.max_packet_size,
            (unsigned)zn_global.max_msg_chan_len,
            (unsigned)zn_global.worker_pool_size,
            (unsigned)zn_global.max_worker_task_len);
    rc = 0;
out:
    zn_json_free(doc);
    return rc;
}
