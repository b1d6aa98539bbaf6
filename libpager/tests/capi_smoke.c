/* The C API used from C (compiled as C99 in pager_uffd_test): a pager over
 * anonymous memory with a fill callback, touched, discarded, stopped. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "ssihv/pager.h"

#define SMOKE_PAGES 256u
#define SMOKE_GPA 0x100000u

struct smoke_ctx {
  unsigned filled;
  uint64_t removed_bytes;
};

static int Fill(void* ctx, uint64_t gpa, void* page, int is_write) {
  struct smoke_ctx* c = ctx;
  uint64_t* words = page;
  unsigned i;
  (void)is_write;
  for (i = 0; i < 4096 / 8; ++i) words[i] = gpa + 8 * i;
  c->filled++;
  return SSIHV_FILL_COPY;
}

static void Remove(void* ctx, uint64_t gpa, uint64_t size) {
  (void)gpa;
  ((struct smoke_ctx*)ctx)->removed_bytes += size;
}

#define CHECK_OK(call)                                             \
  do {                                                             \
    if ((call) != SSIHV_OK) {                                      \
      snprintf(err, err_len, "%s: %s", #call, ssihv_last_error()); \
      goto out;                                                    \
    }                                                              \
  } while (0)

/* 0 on success; else 1 and a message in err. */
int ssihv_capi_smoke(char* err, size_t err_len) {
  struct smoke_ctx ctx = {0, 0};
  ssihv_pager_options options;
  ssihv_pager_stats stats;
  ssihv_pager* pager = NULL;
  int result = 1;
  unsigned i;
  const uint64_t size = SMOKE_PAGES * 4096u;
  uint8_t* ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  err[0] = '\0';
  if (ram == MAP_FAILED) {
    snprintf(err, err_len, "mmap failed");
    return 1;
  }
  memset(&options, 0, sizeof(options));
  options.fault_threads = 2;
  CHECK_OK(ssihv_pager_create(&options, &pager));
  CHECK_OK(ssihv_pager_add_range(pager, ram, size, SMOKE_GPA, 0));
  CHECK_OK(ssihv_pager_set_source_callback(pager, Fill, Remove, &ctx));
  CHECK_OK(ssihv_pager_start(pager));
  for (i = 0; i < SMOKE_PAGES; ++i) {
    uint64_t v;
    memcpy(&v, ram + i * 4096u + 64, 8);
    if (v != SMOKE_GPA + i * 4096u + 64) {
      snprintf(err, err_len, "page %u: word 0x%llx", i, (unsigned long long)v);
      goto out;
    }
  }
  /* A balloon: the next access asks the callback again. */
  CHECK_OK(ssihv_pager_discard(pager, SMOKE_GPA + 4096u, 2 * 4096u));
  if (ram[4096 + 8] != 8 || ctx.filled != SMOKE_PAGES + 1) {
    snprintf(err, err_len, "after discard: filled %u pages", ctx.filled);
    goto out;
  }
  ssihv_pager_stop(pager);
  CHECK_OK(ssihv_pager_get_stats(pager, &stats));
  if (stats.faults[SSIHV_FAULT_LOCAL_COPY] != SMOKE_PAGES + 1 ||
      stats.remove_events != 1 || stats.removed_bytes != 2 * 4096u ||
      ctx.removed_bytes != 2 * 4096u ||
      stats.latency[SSIHV_FAULT_LOCAL_COPY].count != SMOKE_PAGES + 1 ||
      strcmp(ssihv_fault_kind_name(SSIHV_FAULT_LOCAL_COPY), "local_copy")) {
    snprintf(err, err_len,
             "stats: %llu copies, %llu remove events (%llu bytes, callback "
             "%llu)",
             (unsigned long long)stats.faults[SSIHV_FAULT_LOCAL_COPY],
             (unsigned long long)stats.remove_events,
             (unsigned long long)stats.removed_bytes,
             (unsigned long long)ctx.removed_bytes);
    goto out;
  }
  result = 0;
out:
  ssihv_pager_destroy(pager);
  munmap(ram, size);
  return result;
}
