/*
 * file_handler.c — sprig_transfer_file_handler: resources are the files of one directory
 * (sprig/transfer_os.h, docs/transfer.md "Host file handler"). Host code: allocates, blocking I/O.
 */
#include "sprig/transfer_os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_COEF   65599u
#define PART_SUFFIX ".sprig-part"
#define TMP_SUFFIX  ".sprig-XXXXXX"

typedef struct fhandle {
    int fd;
    sprig_transfer_access access;
    bool name_reg; /* a write to SPRIG_TRANSFER_NAME_RESOURCE */
    char *list;    /* a read of SPRIG_TRANSFER_PARTIAL_RESOURCE: the generated text */
    size_t list_len;
    size_t entry;
    char *tmp;   /* WRITE: the temporary file */
    char *final; /* WRITE: where it goes on commit */
    size_t name_len;
    char name[SPRIG_TRANSFER_NAME_MAX + 1];
} fhandle;

uint32_t sprig_transfer_name_id(const char *name)
{
    size_t n = strlen(name);
    uint32_t h = (uint32_t)n;
    uint32_t coef = HASH_COEF;
    for (size_t i = 0; i < n; i++) {
        h += coef * (uint32_t)(unsigned char)name[i];
        coef *= HASH_COEF;
    }
    return h;
}

sprig_status sprig_transfer_name_check(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SPRIG_TRANSFER_NAME_MAX || name[0] == '.') {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20u || c == 0x7fu || c == '/') {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
    }
    uint32_t id = sprig_transfer_name_id(name);
    if (id == SPRIG_TRANSFER_MANIFEST_RESOURCE || id == SPRIG_TRANSFER_NAME_RESOURCE ||
        id == SPRIG_TRANSFER_PARTIAL_RESOURCE) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_transfer_file_status_from_errno(int err)
{
    switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ELOOP:
    case EISDIR:
        return SPRIG_STATUS_PERMISSION_DENIED;
    case ENOENT:
    case ENOTDIR:
        return SPRIG_STATUS_NOT_FOUND;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EFBIG:
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    case EBUSY:
    case ETXTBSY:
        return SPRIG_STATUS_UNAVAILABLE;
    case EIO:
        return SPRIG_STATUS_DATA_LOSS;
    default:
        return SPRIG_STATUS_INTERNAL;
    }
}

static sprig_status from_errno(int err)
{
    return sprig_transfer_file_status_from_errno(err);
}

static char *join(const char *dir, const char *pre, const char *name, const char *post)
{
    size_t n = strlen(dir) + strlen(pre) + strlen(name) + strlen(post) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s%s%s", dir, pre, name, post);
    }
    return p;
}

static sprig_transfer_file_entry *find(sprig_transfer_file_handler *fh, uint32_t id, size_t *idx)
{
    for (size_t i = 0; i < fh->count; i++) {
        if (fh->entries[i].id == id) {
            if (idx != NULL) {
                *idx = i;
            }
            return &fh->entries[i];
        }
    }
    return NULL;
}

static sprig_status add_entry(sprig_transfer_file_handler *fh, const char *name, uint32_t id)
{
    if (fh->count == fh->cap) {
        size_t cap = fh->cap == 0 ? 16 : fh->cap * 2;
        sprig_transfer_file_entry *e = realloc(fh->entries, cap * sizeof(*e));
        if (e == NULL) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        fh->entries = e;
        fh->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    fh->entries[fh->count++] = (sprig_transfer_file_entry){.id = id, .name = copy};
    return SPRIG_STATUS_OK;
}

sprig_status sprig_transfer_file_handler_add_name(sprig_transfer_file_handler *fh, const char *name,
                                                  uint32_t *id)
{
    sprig_status st = sprig_transfer_name_check(name);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    uint32_t h = sprig_transfer_name_id(name);
    if (id != NULL) {
        *id = h;
    }
    sprig_transfer_file_entry *e = find(fh, h, NULL);
    if (e != NULL) {
        if (strcmp(e->name, name) == 0) {
            return e->collided ? SPRIG_STATUS_ALREADY_EXISTS : SPRIG_STATUS_OK;
        }
        if (!e->collided) {
            fprintf(
                stderr,
                "sprig_transfer_file_handler: names '%s' and '%s' share id 0x%08x: both refused\n",
                e->name, name, (unsigned)h);
        }
        e->collided = 1;
        return SPRIG_STATUS_ALREADY_EXISTS;
    }
    return add_entry(fh, name, h);
}

sprig_status sprig_transfer_file_handler_rescan(sprig_transfer_file_handler *fh)
{
    if (fh->single) {
        return SPRIG_STATUS_OK;
    }
    DIR *d = opendir(fh->root);
    if (d == NULL) {
        return from_errno(errno);
    }
    sprig_status result = SPRIG_STATUS_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        sprig_status st = sprig_transfer_file_handler_add_name(fh, de->d_name, NULL);
        if (st == SPRIG_STATUS_RESOURCE_EXHAUSTED) {
            result = st;
            break;
        }
    }
    closedir(d);
    return result;
}

static void handler_reset(sprig_transfer_file_handler *fh);
static const sprig_transfer_handler_ops file_ops;

sprig_status sprig_transfer_file_handler_init(sprig_transfer_file_handler *fh, const char *root,
                                              uint32_t flags)
{
    handler_reset(fh);
    fh->flags = flags;
    struct stat sb;
    if (stat(root, &sb) != 0) {
        return from_errno(errno);
    }
    if (!S_ISDIR(sb.st_mode)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    fh->root = strdup(root);
    if (fh->root == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_status st = sprig_transfer_file_handler_rescan(fh);
    if (st != SPRIG_STATUS_OK) {
        sprig_transfer_file_handler_deinit(fh);
    }
    return st;
}

sprig_status sprig_transfer_file_handler_init_file(sprig_transfer_file_handler *fh,
                                                   const char *path, uint32_t id, uint32_t flags)
{
    handler_reset(fh);
    fh->flags = flags;
    fh->single = true;
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    if (*base == '\0') {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (slash == NULL) {
        fh->root = strdup(".");
    } else if (slash == path) {
        fh->root = strdup("/");
    } else {
        fh->root = strndup(path, (size_t)(slash - path));
    }
    if (fh->root == NULL || add_entry(fh, base, id) != SPRIG_STATUS_OK) {
        sprig_transfer_file_handler_deinit(fh);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return SPRIG_STATUS_OK;
}

static void handler_reset(sprig_transfer_file_handler *fh)
{
    memset(fh, 0, sizeof(*fh));
    fh->handler.ops = &file_ops;
    fh->handler.ctx = fh;
}

void sprig_transfer_file_handler_deinit(sprig_transfer_file_handler *fh)
{
    for (size_t i = 0; i < fh->count; i++) {
        free(fh->entries[i].name);
    }
    free(fh->entries);
    free(fh->root);
    fh->entries = NULL;
    fh->root = NULL;
    fh->count = fh->cap = 0;
}

sprig_status sprig_transfer_file_handler_partial_path(const sprig_transfer_file_handler *fh,
                                                      uint32_t id, char *out, size_t cap)
{
    for (size_t i = 0; i < fh->count; i++) {
        if (fh->entries[i].id == id) {
            int n = snprintf(out, cap, "%s/.%s%s", fh->root, fh->entries[i].name, PART_SUFFIX);
            return n < 0 || (size_t)n >= cap ? SPRIG_STATUS_RESOURCE_EXHAUSTED : SPRIG_STATUS_OK;
        }
    }
    return SPRIG_STATUS_NOT_FOUND;
}

/* ---- handler ops ----------------------------------------------------------------------------- */

static void free_handle(fhandle *h)
{
    if (h->fd >= 0) {
        close(h->fd);
    }
    free(h->tmp);
    free(h->final);
    free(h->list);
    free(h);
}

/* CRC-32 of a whole file (NOT_FOUND etc. on errors). */
static sprig_status file_crc(const char *path, uint64_t *size, uint32_t *crc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return from_errno(errno);
    }
    uint8_t buf[65536];
    uint32_t c = 0;
    uint64_t n = 0;
    sprig_status st = SPRIG_STATUS_OK;
    for (;;) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            st = from_errno(errno);
            break;
        }
        if (got == 0) {
            break;
        }
        c = sprig_transfer_crc32(c, buf, (size_t)got);
        n += (uint64_t)got;
    }
    close(fd);
    *size = n;
    *crc = c;
    return st;
}

/* The partial-upload list: "<size> <crc32> <name>\n" per ".NAME.sprig-part" in the root. */
static sprig_status make_partial_list(sprig_transfer_file_handler *fh, fhandle *h)
{
    h->list = malloc(SPRIG_TRANSFER_PARTIAL_LIST_MAX);
    if (h->list == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    DIR *d = opendir(fh->root);
    if (d == NULL) {
        return from_errno(errno);
    }
    const size_t suffix = sizeof(PART_SUFFIX) - 1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] != '.' || n <= suffix + 1 ||
            strcmp(de->d_name + n - suffix, PART_SUFFIX) != 0) {
            continue;
        }
        char name[SPRIG_TRANSFER_NAME_MAX + 1];
        size_t len = n - suffix - 1;
        if (len > SPRIG_TRANSFER_NAME_MAX) {
            continue;
        }
        memcpy(name, de->d_name + 1, len);
        name[len] = '\0';
        if (sprig_transfer_name_check(name) != SPRIG_STATUS_OK) {
            continue;
        }
        char *path = join(fh->root, "", de->d_name, "");
        uint64_t size = 0;
        uint32_t crc = 0;
        sprig_status st = path != NULL ? file_crc(path, &size, &crc) : SPRIG_STATUS_INTERNAL;
        free(path);
        if (st != SPRIG_STATUS_OK) {
            continue;
        }
        size_t room = SPRIG_TRANSFER_PARTIAL_LIST_MAX - h->list_len;
        int w = snprintf(h->list + h->list_len, room, "%llu %08x %s\n", (unsigned long long)size,
                         (unsigned)crc, name);
        if (w < 0 || (size_t)w >= room) {
            break; /* full: the rest is not listed */
        }
        h->list_len += (size_t)w;
    }
    closedir(d);
    return SPRIG_STATUS_OK;
}

static sprig_status open_read(sprig_transfer_file_handler *fh, fhandle *h, uint64_t offset,
                              uint64_t *size)
{
    sprig_transfer_file_entry *e = &fh->entries[h->entry];
    char *path = join(fh->root, "", e->name, "");
    if (path == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    h->fd = open(path, O_RDONLY | O_CLOEXEC | (fh->single ? 0 : O_NOFOLLOW));
    int err = errno;
    free(path);
    if (h->fd < 0) {
        return from_errno(err);
    }
    struct stat sb;
    if (fstat(h->fd, &sb) != 0) {
        return from_errno(errno);
    }
    if (!S_ISREG(sb.st_mode)) {
        return SPRIG_STATUS_PERMISSION_DENIED;
    }
    if (offset > (uint64_t)sb.st_size) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    *size = (uint64_t)sb.st_size;
    e->busy = 1;
    e->readers++;
    return SPRIG_STATUS_OK;
}

static sprig_status open_write(sprig_transfer_file_handler *fh, fhandle *h, uint64_t offset)
{
    sprig_transfer_file_entry *e = &fh->entries[h->entry];
    h->final = join(fh->root, "", e->name, "");
    if (h->final == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    mode_t mode = 0644;
    struct stat sb;
    if (lstat(h->final, &sb) == 0) {
        if (!S_ISREG(sb.st_mode)) {
            return SPRIG_STATUS_PERMISSION_DENIED; /* a directory, a symlink, a device... */
        }
        mode = sb.st_mode & 07777;
    } else if (errno != ENOENT) {
        return from_errno(errno);
    }
    if (fh->flags & SPRIG_TRANSFER_FILE_KEEP_PARTIAL) {
        h->tmp = join(fh->root, ".", e->name, PART_SUFFIX);
        if (h->tmp == NULL) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        if (offset == 0) {
            h->fd = open(h->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
            return h->fd < 0 ? from_errno(errno) : SPRIG_STATUS_OK;
        }
        h->fd = open(h->tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (h->fd < 0) {
            return errno == ENOENT ? SPRIG_STATUS_UNIMPLEMENTED : from_errno(errno);
        }
        if (fstat(h->fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < offset) {
            return SPRIG_STATUS_UNIMPLEMENTED; /* nothing to continue from */
        }
        return ftruncate(h->fd, (off_t)offset) != 0 ? from_errno(errno) : SPRIG_STATUS_OK;
    }
    if (offset != 0) {
        return SPRIG_STATUS_UNIMPLEMENTED; /* a failed write kept nothing to continue */
    }
    h->tmp = join(fh->root, ".", e->name, TMP_SUFFIX);
    if (h->tmp == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    h->fd = mkostemp(h->tmp, O_CLOEXEC);
    if (h->fd < 0) {
        sprig_status st = from_errno(errno);
        free(h->tmp);
        h->tmp = NULL; /* nothing to remove */
        return st;
    }
    if (fchmod(h->fd, mode) != 0) {
        return from_errno(errno);
    }
    return SPRIG_STATUS_OK;
}

static sprig_status fh_open(void *ctx, uint32_t id, sprig_transfer_access access, uint64_t offset,
                            void **handle, uint64_t *size)
{
    sprig_transfer_file_handler *fh = ctx;
    bool write = access == SPRIG_TRANSFER_ACCESS_WRITE;
    if (write && (fh->flags & SPRIG_TRANSFER_FILE_READ_ONLY)) {
        return SPRIG_STATUS_PERMISSION_DENIED;
    }
    fhandle *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    h->fd = -1;
    h->access = access;
    if (!fh->single && id == SPRIG_TRANSFER_PARTIAL_RESOURCE) {
        sprig_status st = write ? SPRIG_STATUS_PERMISSION_DENIED : make_partial_list(fh, h);
        if (st == SPRIG_STATUS_OK && offset > h->list_len) {
            st = SPRIG_STATUS_OUT_OF_RANGE;
        }
        if (st != SPRIG_STATUS_OK) {
            free_handle(h);
            return st;
        }
        *size = h->list_len;
        fh->open++;
        *handle = h;
        return SPRIG_STATUS_OK;
    }
    if (!fh->single && id == SPRIG_TRANSFER_NAME_RESOURCE) {
        if (!write) {
            free(h);
            return SPRIG_STATUS_PERMISSION_DENIED;
        }
        if (offset != 0) {
            free(h);
            return SPRIG_STATUS_UNIMPLEMENTED;
        }
        h->name_reg = true;
        fh->open++;
        *handle = h;
        return SPRIG_STATUS_OK;
    }
    sprig_transfer_file_entry *e = find(fh, id, &h->entry);
    if (e == NULL && sprig_transfer_file_handler_rescan(fh) == SPRIG_STATUS_OK) {
        e = find(fh, id, &h->entry);
    }
    sprig_status st = SPRIG_STATUS_OK;
    if (e == NULL) {
        st = SPRIG_STATUS_NOT_FOUND;
    } else if (e->collided) {
        st = write ? SPRIG_STATUS_ALREADY_EXISTS : SPRIG_STATUS_FAILED_PRECONDITION;
    } else if (e->busy == 2 || (write && e->busy != 0)) {
        st = SPRIG_STATUS_UNAVAILABLE;
    } else if (write) {
        st = open_write(fh, h, offset);
        if (st == SPRIG_STATUS_OK) {
            e->busy = 2;
        }
    } else {
        st = open_read(fh, h, offset, size);
    }
    if (st != SPRIG_STATUS_OK) {
        if (write && h->tmp != NULL && !(fh->flags & SPRIG_TRANSFER_FILE_KEEP_PARTIAL)) {
            unlink(h->tmp);
        }
        free_handle(h);
        return st;
    }
    fh->open++;
    *handle = h;
    return SPRIG_STATUS_OK;
}

static sprig_status fh_read(void *ctx, void *handle, uint64_t offset, uint8_t *buf, size_t cap,
                            size_t *out_len)
{
    (void)ctx;
    fhandle *h = handle;
    size_t got = 0;
    if (h->list != NULL) {
        if (offset < h->list_len) {
            got = h->list_len - (size_t)offset < cap ? h->list_len - (size_t)offset : cap;
            memcpy(buf, h->list + offset, got);
        }
        *out_len = got;
        return SPRIG_STATUS_OK;
    }
    while (got < cap) {
        ssize_t n = pread(h->fd, buf + got, cap - got, (off_t)(offset + got));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return from_errno(errno);
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    *out_len = got;
    return SPRIG_STATUS_OK;
}

static sprig_status fh_write(void *ctx, void *handle, uint64_t offset, const uint8_t *data,
                             size_t len)
{
    (void)ctx;
    fhandle *h = handle;
    if (h->name_reg) {
        if (offset != h->name_len || len > SPRIG_TRANSFER_NAME_MAX - h->name_len) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        memcpy(h->name + h->name_len, data, len);
        h->name_len += len;
        return SPRIG_STATUS_OK;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(h->fd, data + done, len - done, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return from_errno(errno);
        }
        done += (size_t)n;
    }
    return SPRIG_STATUS_OK;
}

static sprig_status commit(fhandle *h)
{
    if (fdatasync(h->fd) != 0) {
        return from_errno(errno);
    }
    int fd = h->fd;
    h->fd = -1;
    if (close(fd) != 0) {
        return from_errno(errno);
    }
    if (rename(h->tmp, h->final) != 0) {
        return from_errno(errno);
    }
    return SPRIG_STATUS_OK;
}

static sprig_status fh_close(void *ctx, void *handle, sprig_status status)
{
    sprig_transfer_file_handler *fh = ctx;
    fhandle *h = handle;
    sprig_status st = SPRIG_STATUS_OK;
    fh->open--;
    if (h->list != NULL) {
        free_handle(h);
        return SPRIG_STATUS_OK;
    }
    if (h->name_reg) {
        if (status == SPRIG_STATUS_OK) {
            h->name[h->name_len] = '\0';
            st = memchr(h->name, '\0', h->name_len) != NULL
                     ? SPRIG_STATUS_INVALID_ARGUMENT
                     : sprig_transfer_file_handler_add_name(fh, h->name, NULL);
        }
        free_handle(h);
        return st;
    }
    sprig_transfer_file_entry *e = &fh->entries[h->entry];
    if (h->access == SPRIG_TRANSFER_ACCESS_READ) {
        if (--e->readers == 0) {
            e->busy = 0;
        }
        free_handle(h);
        return SPRIG_STATUS_OK;
    }
    e->busy = 0;
    if (status == SPRIG_STATUS_OK) {
        st = commit(h);
        if (st != SPRIG_STATUS_OK) {
            unlink(h->tmp); /* nothing claimed written */
        }
    } else {
        struct stat sb;
        bool empty = h->fd >= 0 && fstat(h->fd, &sb) == 0 && sb.st_size == 0;
        if (!(fh->flags & SPRIG_TRANSFER_FILE_KEEP_PARTIAL) || empty) {
            unlink(h->tmp); /* kept only when there is something to continue */
        }
    }
    free_handle(h);
    return st;
}

static const sprig_transfer_handler_ops file_ops = {
    .open = fh_open,
    .read = fh_read,
    .write = fh_write,
    .close = fh_close,
};
