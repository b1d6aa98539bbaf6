/* ssihv/pager.h: the C API of libpager, for VMMs written in C (QEMU,
 * kvmtool) or Rust (through bindgen: plain structs, enums, functions and
 * function pointers only).
 *
 * A pager owns the userfaultfd over a VMM's guest RAM: every first touch of a
 * registered page, by a vCPU or by KVM itself from kernel mode, blocks until
 * one of the pager's fault threads maps it from the chosen source (zeros, a
 * file image, a callback, or the DSM node of an ssihv cluster).
 *
 *   ssihv_pager *p;
 *   ssihv_pager_options opts = {0};                    all zero: defaults
 *   if (ssihv_pager_create(&opts, &p) != SSIHV_OK) die(ssihv_last_error());
 *   ssihv_pager_add_range(p, ram, ram_size, 0, 0);    ram: anonymous mmap
 *   ssihv_pager_set_source_callback(p, fill, NULL, ctx);
 *   ssihv_pager_start(p);
 *   ... KVM_SET_USER_MEMORY_REGION(ram), run the vCPUs ...
 *   ssihv_pager_stop(p);                              after the vCPUs stopped
 *   ssihv_pager_destroy(p);                           before munmap(ram)
 *
 * Linking: pkg-config ssihv-pager (ssihv-pager-dsm for
 * ssihv_pager_create_dsm and the remote images), or CMake
 * find_package(ssihv CONFIG) and the
 * targets ssihv::pager (ssihv::pager_dsm). docs/PAGER.md has the details.
 *
 * Errors: every function that can fail returns an ssihv_status; SSIHV_OK is
 * 0. On failure ssihv_last_error() returns a message naming the operation
 * and its arguments. No function throws, aborts or exits on bad input.
 *
 * Thread safety:
 *  1. create, add_range, set_source_*, start, stop and destroy of one pager
 *     are called by one thread at a time (the VMM's control thread);
 *     add_range and set_source_* only while the pager is stopped.
 *  2. ssihv_pager_get_stats, ssihv_pager_discard and ssihv_pager_memory:
 *     from any thread at any time between create and destroy.
 *  3. The fill, remove and on_error callbacks run on the pager's fault
 *     threads, concurrently when fault_threads > 1. While one runs, that
 *     thread serves no other fault: return quickly, never wait for the
 *     guest. They must not call start, stop or destroy.
 *  4. ssihv_last_error() is per thread.
 *  5. Register and start before anything touches the guest RAM (the VMM's
 *     own writes of a kernel image fault too). Stop the vCPUs before
 *     ssihv_pager_stop: faults not resolved stay pending and the vCPUs
 *     blocked. Destroy the pager before unmapping its RAM.
 */
#ifndef SSIHV_PAGER_C_H_
#define SSIHV_PAGER_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: the canonical (absl / gRPC) error codes, same numbers. */
typedef enum ssihv_status {
  SSIHV_OK = 0,
  SSIHV_CANCELLED = 1,
  SSIHV_UNKNOWN = 2,
  SSIHV_INVALID_ARGUMENT = 3,
  SSIHV_DEADLINE_EXCEEDED = 4,
  SSIHV_NOT_FOUND = 5,
  SSIHV_ALREADY_EXISTS = 6,
  SSIHV_PERMISSION_DENIED = 7,
  SSIHV_RESOURCE_EXHAUSTED = 8,
  SSIHV_FAILED_PRECONDITION = 9,
  SSIHV_ABORTED = 10,
  SSIHV_OUT_OF_RANGE = 11,
  SSIHV_UNIMPLEMENTED = 12,
  SSIHV_INTERNAL = 13,
  SSIHV_UNAVAILABLE = 14,
  SSIHV_DATA_LOSS = 15,
  SSIHV_UNAUTHENTICATED = 16
} ssihv_status;

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" outside the enum; never NULL.
 * Takes an int so that any value a caller holds is valid to pass. */
const char* ssihv_status_name(int status);

/* The message of the last call that failed on this thread ("" if none).
 * Valid until the next failing ssihv_* call on this thread. */
const char* ssihv_last_error(void);

/* A pager. Opaque. */
typedef struct ssihv_pager ssihv_pager;

/* Called when a fault cannot be resolved (a source failed, an unexpected
 * errno): the faulting vCPU stays blocked, so the VMM should stop the guest.
 * Runs on the thread that found the error; `message` is valid during the
 * call only. */
typedef void (*ssihv_error_fn)(void* ctx, ssihv_status status,
                               const char* message);

/* Options of a pager. An all-zero struct means the defaults. */
typedef struct ssihv_pager_options {
  /* Threads reading the userfaultfd; 0 means 1. About one per two busy
   * vCPUs when faults are frequent. At most 256. */
  uint32_t fault_threads;
  /* Optional. */
  ssihv_error_fn on_error;
  void* on_error_ctx;
} ssihv_pager_options;

/* Creates a pager with a new userfaultfd. `options` may be NULL. Fails when
 * the kernel lacks write-protect faults on anonymous memory (Linux 5.7) or
 * REMOVE events, or without permission: read-write access to
 * /dev/userfaultfd, or CAP_SYS_PTRACE. */
ssihv_status ssihv_pager_create(const ssihv_pager_options* options,
                                ssihv_pager** out);

/* Creates a pager that serves a userfaultfd created elsewhere, typically by
 * another process that passed it over a Unix socket (Firecracker's "Uffd"
 * snapshot backend). Its creator has done UFFDIO_API and registers the
 * ranges (MISSING mode); ssihv_pager_add_range then only records them, with
 * `host` the address in the creator's address space. ssihv_pager_discard
 * is refused (another process's pages cannot be dropped from here). The
 * pager duplicates `uffd`: the caller keeps and closes its descriptor. */
ssihv_status ssihv_pager_create_for_uffd(int uffd,
                                         const ssihv_pager_options* options,
                                         ssihv_pager** out);

/* Creates node `node` of the ssihv cluster described by the JSON cluster
 * config at `config_path` (docs/CLUSTER_CONFIG.md): the pager maps the whole
 * cluster's guest RAM itself (ssihv_pager_memory) and its source is the DSM
 * protocol, which fetches pages from the other nodes over TCP or RDMA.
 * ssihv_pager_start waits (up to 30 s) until every peer is connected.
 * Defined in the ssihv-pager-dsm library. */
ssihv_status ssihv_pager_create_dsm(const char* config_path, uint32_t node,
                                    const ssihv_pager_options* options,
                                    ssihv_pager** out);

/* Stops the pager if running and frees it, closing its userfaultfd (the
 * kernel unregisters the ranges). NULL is ignored. */
void ssihv_pager_destroy(ssihv_pager* pager);

/* Flags of ssihv_pager_add_range. */
#define SSIHV_RANGE_SHMEM 1u /* MAP_SHARED memfd/shmem (Linux 6.0+) */

/* Registers `size` bytes at `host` (page-aligned, a multiple of 4096) as
 * guest-physical [gpa, gpa + size): MISSING and write-protect modes.
 * Without flags the memory must be private anonymous (MAP_PRIVATE |
 * MAP_ANONYMOUS); SSIHV_RANGE_SHMEM for a shared memfd. Ranges must not
 * overlap in host address or gpa. Only while stopped. */
ssihv_status ssihv_pager_add_range(ssihv_pager* pager, void* host,
                                   uint64_t size, uint64_t gpa, uint32_t flags);

/* The guest RAM a DSM pager mapped itself: RAM offset x is at *host + x.
 * FAILED_PRECONDITION for other pagers (their RAM is the caller's). */
ssihv_status ssihv_pager_memory(ssihv_pager* pager, void** host,
                                uint64_t* size);

/* Source: every page starts as zeros (a read maps the shared zero page, a
 * write a zeroed private page). With `fault_around` (a power of two of at
 * least 8192, else 0 = off), each fault also zero-fills the rest of its
 * aligned block after the vCPU resumed: a guest walking its memory faults
 * once per block. */
ssihv_status ssihv_pager_set_source_zero(ssihv_pager* pager,
                                         uint64_t fault_around);

/* File bytes [file_offset, file_offset + size) back guest-physical
 * [gpa, gpa + size). All multiples of 4096. */
typedef struct ssihv_file_extent {
  uint64_t gpa;
  uint64_t file_offset;
  uint64_t size;
} ssihv_file_extent;

/* Source: pages come from the file at `path` (a raw RAM image, a snapshot),
 * mapped read-only, through `count` extents; with `count` 0 the whole file
 * backs gpa [0, file size). Pages outside every extent, and pages discarded
 * since (MADV_DONTNEED: a balloon), read as zeros. The file must not shrink
 * while the pager uses it. */
ssihv_status ssihv_pager_set_source_file(ssihv_pager* pager, const char* path,
                                         const ssihv_file_extent* extents,
                                         size_t count);

/* What a fill callback did with the page. */
typedef enum ssihv_fill_result {
  SSIHV_FILL_COPY = 0, /* map the 4096 bytes written to `page` */
  SSIHV_FILL_ZERO = 1, /* map zeros; `page` is ignored */
  SSIHV_FILL_FAIL = 2  /* cannot: on_error runs, the vCPU stays blocked */
} ssihv_fill_result;

/* Fills the 4096-byte page at guest-physical `gpa` (page-aligned) into
 * `page` (4096 bytes, 4096-aligned, owned by the pager); `is_write` is 1
 * when the faulting access was a write. Returns an ssihv_fill_result. */
typedef int (*ssihv_fill_fn)(void* ctx, uint64_t gpa, void* page, int is_write);

/* [gpa, gpa + size) was dropped by MADV_DONTNEED/MADV_REMOVE (a balloon):
 * the next access faults again. Runs before any later fault is read: keep
 * it short (set a bit). */
typedef void (*ssihv_remove_fn)(void* ctx, uint64_t gpa, uint64_t size);

/* Source: `fill` (required) provides each page; `remove` (optional) is told
 * of discards; `ctx` is passed to both. */
ssihv_status ssihv_pager_set_source_callback(ssihv_pager* pager,
                                             ssihv_fill_fn fill,
                                             ssihv_remove_fn remove, void* ctx);

/* Source (ssihv-pager-dsm library): the pages of an image, a snapshot's
 * memory file, that node `exporter` of the ssihv cluster at `config_path`
 * exports (ssihv_image_export_start, or ssihv-uffd-handler --export), seen
 * as node `node` of it: image byte x backs guest-physical gpa + x, fetched
 * over the cluster's transport when first touched (one RDMA READ, or a
 * request on a TCP fetch lane; the fault thread waits for it). Pages
 * outside the image, and pages discarded since, read as zeros. Waits up to
 * `timeout_ms` (0: 60 s) for the exporter here, and as long for it to come
 * back when its connection drops; a fault then fails (on_error). */
ssihv_status ssihv_pager_set_source_remote(ssihv_pager* pager,
                                           const char* config_path,
                                           uint32_t node, uint32_t exporter,
                                           uint64_t gpa, uint32_t timeout_ms);

/* An image served to the other nodes of a cluster (ssihv-pager-dsm). */
typedef struct ssihv_image_export ssihv_image_export;

/* Exports `size` bytes at `image` (page-aligned memory, a multiple of 4096
 * bytes, unchanged and mapped until ssihv_image_export_destroy returns) as
 * node `node` of the ssihv cluster at `config_path`: the other nodes'
 * ssihv_pager_set_source_remote read it. Only authenticated nodes of the
 * cluster connect. */
ssihv_status ssihv_image_export_start(const char* config_path, uint32_t node,
                                      const void* image, uint64_t size,
                                      ssihv_image_export** out);

/* Stops serving (no peer reads the image after it returns). NULL is
 * ignored. */
void ssihv_image_export_destroy(ssihv_image_export* image_export);

/* Starts the fault threads. Needs a source and at least one range. */
ssihv_status ssihv_pager_start(ssihv_pager* pager);

/* Stops and joins the fault threads; idempotent. Faults not yet resolved
 * stay pending and are served after the next start. */
void ssihv_pager_stop(ssihv_pager* pager);

/* Drops guest-physical [gpa, gpa + size) (page-aligned, inside one range):
 * the next access faults again and the source is asked anew (a balloon).
 * Only while running. */
ssihv_status ssihv_pager_discard(ssihv_pager* pager, uint64_t gpa,
                                 uint64_t size);

/* How faults were resolved; indexes of ssihv_pager_stats.faults/latency. */
typedef enum ssihv_fault_kind {
  SSIHV_FAULT_LOCAL_ZERO = 0,   /* zero page / zeroed page */
  SSIHV_FAULT_LOCAL_COPY = 1,   /* bytes from a local source */
  SSIHV_FAULT_REMOTE_READ = 2,  /* bytes from another node, read-only */
  SSIHV_FAULT_REMOTE_WRITE = 3, /* bytes from another node, writable */
  SSIHV_FAULT_UPGRADE = 4       /* write permission on a mapped page */
} ssihv_fault_kind;
#define SSIHV_FAULT_KINDS 5

/* "local_zero", "local_copy", ...; "unknown" outside the enum. */
const char* ssihv_fault_kind_name(int kind);

/* One latency distribution, microseconds. Percentiles within ~3%. */
typedef struct ssihv_latency {
  uint64_t count;
  double mean_us;
  double p50_us;
  double p90_us;
  double p99_us;
  double max_us;
} ssihv_latency;

/* A snapshot of a pager's counters. Service time runs from reading the
 * fault off the userfaultfd to the end of the ioctl that resolved it. */
typedef struct ssihv_pager_stats {
  uint64_t faults[SSIHV_FAULT_KINDS];
  ssihv_latency latency[SSIHV_FAULT_KINDS];
  ssihv_latency all;       /* every kind together */
  uint64_t messages;       /* page-fault messages read */
  uint64_t eexist_races;   /* resolutions that found the page mapped */
  uint64_t eagain_retries; /* resolutions retried: mapping changing */
  uint64_t remove_events;  /* REMOVE events (MADV_DONTNEED/REMOVE) */
  uint64_t removed_bytes;  /* bytes covered by them */
  uint64_t errors;         /* faults that could not be resolved */
  uint64_t filled_ahead;   /* pages mapped ahead by fault-around */
  uint64_t features;       /* negotiated UFFD_FEATURE_* bits (0: unknown) */
} ssihv_pager_stats;

ssihv_status ssihv_pager_get_stats(const ssihv_pager* pager,
                                   ssihv_pager_stats* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SSIHV_PAGER_C_H_ */
