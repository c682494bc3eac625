/*
 * sprig/transfer_os.h — host (POSIX) resource handler for sprig::transfer: resources are the files
 * of one directory (docs/transfer.md, "Host file handler").
 *
 * Contract
 *   Names and ids: a resource's id is sprig_transfer_name_id(name) (pw_rpc's 65599 hash of the
 *     file name). Names are single path components: not empty, at most
 *     SPRIG_TRANSFER_NAME_MAX bytes, no '/', no control character (< 0x20, 0x7f), and not
 *     starting with '.' (which also excludes "." and ".." and hides the handler's own temporary
 *     files). The handler indexes its directory when initialised and again, on demand, when an id
 *     is not known. Two names with one id are never confused: both are refused (READ:
 *     FAILED_PRECONDITION, WRITE: ALREADY_EXISTS).
 *   New files: the START chunk carries only an id, so a peer that wants to create a file first
 *     writes its name to the reserved resource SPRIG_TRANSFER_NAME_RESOURCE (a tiny upload whose
 *     bytes are the name); the handler validates it and adds it to its index, and a write to the
 *     name's id then creates the file. Ids 0 (reserved for a manifest), 1 and 2 are never files.
 *   Writes: bytes go to a temporary file in the same directory; close(OK) (the engine verified
 *     the checksum) fsyncs it and renames it over the name; any other close removes it, leaving
 *     the old file untouched. With SPRIG_TRANSFER_FILE_KEEP_PARTIAL, the temporary file has a
 *     fixed name (".NAME.sprig-part") and is kept after a failure, so that a later write starting
 *     at an offset (initial_offset, resume) continues it.
 *   Resuming uploads: reading SPRIG_TRANSFER_PARTIAL_RESOURCE gives one text line per kept
 *     partial write (KEEP_PARTIAL) in the root: "<size> <crc32 as 8 hex digits> <name>\n", the
 *     CRC-32 (sprig_transfer_crc32) of the kept bytes. A client whose local file starts with the
 *     same bytes writes from <size> on (initial_offset). Computing the CRCs reads every partial
 *     file: a blocking cost on the loop, paid only when a client asks.
 *   Reads stream from the file (pread), from any offset up to its size.
 *   Errors: EACCES/EPERM/EROFS → PERMISSION_DENIED, missing → NOT_FOUND, ENOSPC/EDQUOT/EMFILE →
 *     RESOURCE_EXHAUSTED (from open; a write that fails mid-transfer is reported by the engine as
 *     DATA_LOSS), a second writer of one resource → UNAVAILABLE, a write at an offset that cannot
 *     be continued → UNIMPLEMENTED, a read beyond the end → OUT_OF_RANGE.
 *   Memory and blocking: host code; it allocates (index, handles) and does blocking file I/O on
 *     the loop thread (local files: short). Not thread-safe: use it from one loop.
 */
#ifndef SPRIG_TRANSFER_OS_H
#define SPRIG_TRANSFER_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/loop.h"
#include "sprig/sock.h"
#include "sprig/status.h"
#include "sprig/transfer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPRIG_TRANSFER_NAME_MAX 255
/* Reserved resource ids: 0 (a future manifest), the name-registration resource (write only)
 * and the partial-upload list (read only; see below). No name may hash to one of them. */
#define SPRIG_TRANSFER_MANIFEST_RESOURCE 0u
#define SPRIG_TRANSFER_NAME_RESOURCE     1u
#define SPRIG_TRANSFER_PARTIAL_RESOURCE  2u
/* At most this many bytes of partial-upload list are served. */
#define SPRIG_TRANSFER_PARTIAL_LIST_MAX (64u * 1024u)

/* Flags for sprig_transfer_file_handler_init. */
#define SPRIG_TRANSFER_FILE_READ_ONLY    0x1u /* refuse writes: PERMISSION_DENIED */
#define SPRIG_TRANSFER_FILE_KEEP_PARTIAL 0x2u /* keep a failed write's bytes for a resume */

typedef struct sprig_transfer_file_entry {
    uint32_t id;
    uint8_t collided; /* another name has this id: refused */
    uint8_t busy;     /* 0 free, 1 reading (count in readers), 2 writing */
    uint32_t readers;
    char *name;
} sprig_transfer_file_entry;

typedef struct sprig_transfer_file_handler {
    sprig_transfer_handler handler; /* pass &fh.handler */
    char *root;
    uint32_t flags;
    bool single; /* one file (sprig_transfer_file_handler_init_file): no scan, no names */
    sprig_transfer_file_entry *entries;
    size_t count;
    size_t cap;
    size_t open; /* handles not yet closed */
} sprig_transfer_file_handler;

/* The 65599 hash of a name (WIRE.md, "Service and method ids"). */
uint32_t sprig_transfer_name_id(const char *name);
/* OK if `name` may name a resource (rules above), INVALID_ARGUMENT otherwise. */
sprig_status sprig_transfer_name_check(const char *name);

/* The handler's one errno → status table (the native code is never returned upward). */
sprig_status sprig_transfer_file_status_from_errno(int err);

/* Serve the files of directory `root`. NOT_FOUND / PERMISSION_DENIED if it cannot be read,
 * INVALID_ARGUMENT if it is not a directory, RESOURCE_EXHAUSTED without memory. */
sprig_status sprig_transfer_file_handler_init(sprig_transfer_file_handler *fh, const char *root,
                                              uint32_t flags);
/* One local file at `path` as resource `id` (the client's end of a transfer): no name rules,
 * the temporary file lives beside it. */
sprig_status sprig_transfer_file_handler_init_file(sprig_transfer_file_handler *fh,
                                                   const char *path, uint32_t id, uint32_t flags);
/* Frees the index. Close every transfer first. Idempotent; safe after a failed init. */
void sprig_transfer_file_handler_deinit(sprig_transfer_file_handler *fh);
/* Add `name` to the index (what a write to SPRIG_TRANSFER_NAME_RESOURCE does). OK if it is new
 * or already there; INVALID_ARGUMENT for a bad name or one whose id is reserved;
 * ALREADY_EXISTS if another name has its id (both are then refused). *id may be NULL. */
sprig_status sprig_transfer_file_handler_add_name(sprig_transfer_file_handler *fh, const char *name,
                                                  uint32_t *id);
/* Re-read the directory (new files become reachable by id). */
sprig_status sprig_transfer_file_handler_rescan(sprig_transfer_file_handler *fh);
/* The temporary-file path a KEEP_PARTIAL write of resource `id` uses (for a resume: its size
 * is the offset to continue from). NOT_FOUND for an unknown id, RESOURCE_EXHAUSTED if cap is too
 * small. */
sprig_status sprig_transfer_file_handler_partial_path(const sprig_transfer_file_handler *fh,
                                                      uint32_t id, char *out, size_t cap);

/* ---- serving a handler on sockets (sprig_transfer_server) -------------------------------------
 *
 * One transfer node per accepted connection of a SEQPACKET listener, and one node on a bound
 * DGRAM socket that serves every peer (the engine keys sessions by address), each with its own
 * malloc'd sessions and receive buffer (the socket's max message size). Server nodes number
 * their sessions from 0x40000000 (the dialing side uses ids from 1). A connection whose socket
 * closed is freed once its transfers ended (checked every 500 ms on the loop). The caller
 * creates the listening sockets and prints what it wants from the events; it runs the loop.
 * Host code: allocates; not thread-safe (one loop).
 */
#define SPRIG_TRANSFER_SERVER_MAX_SOCKS 8

typedef enum sprig_transfer_server_event {
    SPRIG_TRANSFER_SERVER_OPENED,          /* a node serves a new connection (or DGRAM socket) */
    SPRIG_TRANSFER_SERVER_DONE,            /* a transfer ended: session_id, status */
    SPRIG_TRANSFER_SERVER_CLOSED,          /* a connection closed, its transfers ended: freed */
    SPRIG_TRANSFER_SERVER_ERROR,           /* `what` failed with status; the server goes on */
    SPRIG_TRANSFER_SERVER_LISTENER_CLOSED, /* a listener closed with status (callers stop) */
} sprig_transfer_server_event;

typedef struct sprig_transfer_server_info {
    sprig_transfer_server_event event;
    unsigned long conn;  /* the connection's number (1, 2, ...; 0 when none) */
    uint32_t session_id; /* DONE */
    sprig_status status; /* DONE, ERROR, LISTENER_CLOSED */
    const char *what;    /* ERROR: "accept", "accept a connection", "serve a connection" */
} sprig_transfer_server_info;

typedef struct sprig_transfer_server_cfg {
    sprig_loop *loop;
    sprig_transfer_handler *handler; /* serves every node */
    size_t max_sessions;             /* per node; 0: 8 */
    uint32_t window_chunks;          /* the nodes' sprig_transfer_cfg.window_chunks */
    size_t dgram_max_chunk;          /* max_chunk of a node on a DGRAM socket; 0: the engine's */
    sprig_time chunk_timeout;        /* the nodes' sprig_transfer_cfg.chunk_timeout; 0: default */
    uint8_t max_retries;             /* the nodes' sprig_transfer_cfg.max_retries; 0: default */
    void (*on_event)(const sprig_transfer_server_info *info, void *user); /* may be NULL */
    void *user;
} sprig_transfer_server_cfg;

typedef struct sprig_transfer_server_conn sprig_transfer_server_conn;

typedef struct sprig_transfer_server {
    sprig_transfer_server_cfg cfg;
    sprig_sock *socks[SPRIG_TRANSFER_SERVER_MAX_SOCKS]; /* listeners */
    size_t nsocks;
    sprig_transfer_server_conn *conns;
    sprig_timer reaper;
    unsigned long accepted;  /* connections (and DGRAM sockets) served so far */
    unsigned long transfers; /* transfers ended so far */
    bool up;
} sprig_transfer_server;

/* INVALID_ARGUMENT without loop or handler. Starts the reaper timer. */
sprig_status sprig_transfer_server_init(sprig_transfer_server *s,
                                        const sprig_transfer_server_cfg *cfg);
/* Serve `sock` (the server owns it from here on, also on failure): a listening SEQPACKET socket
 * gets its connections accepted; a DGRAM socket gets one node. RESOURCE_EXHAUSTED past
 * SPRIG_TRANSFER_SERVER_MAX_SOCKS listeners or without memory; the node's init status;
 * FAILED_PRECONDITION when the server is not initialised. */
sprig_status sprig_transfer_server_add(sprig_transfer_server *s, sprig_sock *sock);
/* Free every node (ending its transfers) and close every socket. Run the loop once afterwards
 * so that the closes complete. Idempotent; safe after a failed init. */
void sprig_transfer_server_deinit(sprig_transfer_server *s);
/* One line for an event (no newline; cut to cap): "connection 3 opened", "connection 3 session 1:
 * OK", "connection 3 closed", "accept: UNAVAILABLE" (ERROR: what and status), "listener closed:
 * ABORTED". */
void sprig_transfer_server_describe(const sprig_transfer_server_info *info, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_TRANSFER_OS_H */
