/* A minimal KVM VMM in C whose guest memory is served by libpager through
 * its C API (<ssihv/pager.h>): every page the guest first touches is filled
 * by a callback on one of the pager's fault threads.
 *
 * The guest (32-bit protected mode, flat segments, no paging) hashes the
 * 32-bit words of a 4 MiB data area the callback fills with a known
 * pattern, reports the hash on port 0x10, then writes and reads back one word
 * in each page of a 2 MiB scratch area (zero-filled pages) and reports that
 * sum on port 0x11. The VMM checks both against the values it computes
 * itself, and the pager's statistics against the pages touched.
 *
 * Build against an installed ssihv (see README.md here):
 *   cc -std=c99 vmm.c $(pkg-config --cflags --libs ssihv-pager) -o vmm
 * Exit status: 0 checked, 1 a wrong result or an error, 77 no usable
 * /dev/kvm (the automake "skipped" status). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <ssihv/pager.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Guest-physical layout. */
#define RAM_SIZE (8u << 20)
#define CODE_GPA 0x1000u
#define DATA_GPA 0x100000u
#define DATA_SIZE (4u << 20)
#define SCRATCH_GPA 0x600000u
#define SCRATCH_PAGES 512u
#define PAGE 4096u

/* The guest program; %esi/%ecx: data area and its word count, %edi/%ebp:
 * scratch area and its page count (set by the VMM). The data hash is
 * order-sensitive: a page served at the wrong address changes it.
 *   xor %eax,%eax
 * 1: imul $31,%eax,%eax; add (%esi),%eax; add $4,%esi; dec %ecx; jnz 1b
 *   mov $0x10,%dx; out %eax,(%dx)
 *   mov %ebp,%ecx; xor %ebx,%ebx
 * 2: mov %ecx,(%edi); add 4(%edi),%ebx; add (%edi),%ebx
 *   add $4096,%edi; dec %ecx; jnz 2b
 *   mov %ebx,%eax; mov $0x11,%dx; out %eax,(%dx); hlt */
static const uint8_t kGuestCode[] = {
    0x31, 0xc0, 0x6b, 0xc0, 0x1f, 0x03, 0x06, 0x83, 0xc6, 0x04, 0x49, 0x75,
    0xf5, 0x66, 0xba, 0x10, 0x00, 0xef, 0x89, 0xe9, 0x31, 0xdb, 0x89, 0x0f,
    0x03, 0x5f, 0x04, 0x03, 0x1f, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, 0x49,
    0x75, 0xf0, 0x89, 0xd8, 0x66, 0xba, 0x11, 0x00, 0xef, 0xf4};

/* The data pattern: the word at guest-physical address a (a hash of a). */
static uint32_t DataWord(uint32_t a) {
  uint32_t x = a * 2654435761u;
  x ^= x >> 15;
  x *= 2246822519u;
  return x ^ (x >> 13);
}

/* Counts what the callback served; it runs on the pager's fault thread. */
struct fill_counts {
  unsigned code, data, zero;
};

/* ssihv_fill_fn: the bytes of the page at `gpa`. */
static int FillPage(void* ctx, uint64_t gpa, void* page, int is_write) {
  struct fill_counts* counts = ctx;
  uint32_t* words = page;
  uint32_t i;
  (void)is_write;
  if (gpa == CODE_GPA) {
    memset(page, 0xf4, PAGE); /* hlt everywhere else on the page */
    memcpy(page, kGuestCode, sizeof(kGuestCode));
    __atomic_fetch_add(&counts->code, 1, __ATOMIC_RELAXED);
    return SSIHV_FILL_COPY;
  }
  if (gpa >= DATA_GPA && gpa < DATA_GPA + DATA_SIZE) {
    for (i = 0; i < PAGE / 4; ++i) words[i] = DataWord((uint32_t)gpa + 4 * i);
    __atomic_fetch_add(&counts->data, 1, __ATOMIC_RELAXED);
    return SSIHV_FILL_COPY;
  }
  __atomic_fetch_add(&counts->zero, 1, __ATOMIC_RELAXED);
  return SSIHV_FILL_ZERO;
}

static void OnPagerError(void* ctx, ssihv_status status, const char* message) {
  (void)ctx;
  fprintf(stderr, "vmm: pager error %s: %s\n", ssihv_status_name(status),
          message);
}

static int Fail(const char* what) {
  fprintf(stderr, "vmm: %s: %s\n", what, strerror(errno));
  return 1;
}

static int PagerFail(const char* what) {
  fprintf(stderr, "vmm: %s: %s\n", what, ssihv_last_error());
  return 1;
}

/* 32-bit flat protected mode without paging or a GDT in memory: KVM loads
 * the hidden segment state from these descriptors directly. */
static void FlatSegment(struct kvm_segment* s, uint16_t selector, int code) {
  memset(s, 0, sizeof(*s));
  s->base = 0;
  s->limit = 0xffffffffu;
  s->selector = selector;
  s->type = code ? 11 : 3; /* execute/read or read/write, accessed */
  s->present = 1;
  s->s = 1;
  s->db = 1;
  s->g = 1;
}

static int SetUpVcpu(int vcpu) {
  struct kvm_sregs sregs;
  struct kvm_regs regs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return Fail("KVM_GET_SREGS");
  FlatSegment(&sregs.cs, 0x08, 1);
  FlatSegment(&sregs.ds, 0x10, 0);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  sregs.cr0 |= 1; /* PE */
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return Fail("KVM_SET_SREGS");
  memset(&regs, 0, sizeof(regs));
  regs.rip = CODE_GPA;
  regs.rflags = 2;
  regs.rsi = DATA_GPA;
  regs.rcx = DATA_SIZE / 4;
  regs.rdi = SCRATCH_GPA;
  regs.rbp = SCRATCH_PAGES;
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return Fail("KVM_SET_REGS");
  return 0;
}

/* Runs the vCPU to its hlt; the words written to ports 0x10/0x11. */
static int RunGuest(int vcpu, struct kvm_run* run, uint32_t out[2]) {
  int seen = 0;
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      return Fail("KVM_RUN");
    }
    if (run->exit_reason == KVM_EXIT_HLT) break;
    if (run->exit_reason == KVM_EXIT_IO &&
        run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 4 &&
        (run->io.port == 0x10 || run->io.port == 0x11)) {
      memcpy(&out[run->io.port - 0x10], (uint8_t*)run + run->io.data_offset, 4);
      seen |= 1 << (run->io.port - 0x10);
      continue;
    }
    fprintf(stderr, "vmm: unexpected exit reason %u\n", run->exit_reason);
    return 1;
  }
  if (seen != 3) {
    fprintf(stderr, "vmm: the guest halted without reporting both results\n");
    return 1;
  }
  return 0;
}

/* What the guest must report, computed here. */
static void Expected(uint32_t want[2]) {
  uint32_t a, i;
  want[0] = 0;
  for (a = DATA_GPA; a < DATA_GPA + DATA_SIZE; a += 4)
    want[0] = want[0] * 31 + DataWord(a);
  want[1] = 0;
  for (i = 1; i <= SCRATCH_PAGES; ++i) want[1] += i;
}

/* Creates the VM and its vCPU over `ram`; 77 without a usable /dev/kvm. */
static int CreateVm(void* ram, int* vm_out, int* vcpu_out,
                    struct kvm_run** run_out) {
  struct kvm_userspace_memory_region region;
  int kvm, vm, vcpu, run_size;
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0 || ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION ||
      (vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0) {
    printf("SKIP kvm: /dev/kvm is not usable: %s\n", strerror(errno));
    return 77;
  }
  memset(&region, 0, sizeof(region));
  region.memory_size = RAM_SIZE;
  region.userspace_addr = (uint64_t)(uintptr_t)ram;
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
    return Fail("KVM_SET_USER_MEMORY_REGION");
  vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return Fail("KVM_CREATE_VCPU");
  run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) return Fail("KVM_GET_VCPU_MMAP_SIZE");
  *run_out =
      mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (*run_out == MAP_FAILED) return Fail("mmap kvm_run");
  close(kvm);
  *vm_out = vm;
  *vcpu_out = vcpu;
  return SetUpVcpu(vcpu);
}

/* The statistics must show every page the guest touched, once. */
static int CheckStats(const ssihv_pager* pager,
                      const struct fill_counts* counts) {
  ssihv_pager_stats stats;
  const unsigned data_pages = DATA_SIZE / PAGE;
  if (ssihv_pager_get_stats(pager, &stats) != SSIHV_OK)
    return PagerFail("ssihv_pager_get_stats");
  printf(
      "pager: %llu faults served from the callback, %llu zero-filled, "
      "p50 %.1f us, p99 %.1f us\n",
      (unsigned long long)stats.faults[SSIHV_FAULT_LOCAL_COPY],
      (unsigned long long)stats.faults[SSIHV_FAULT_LOCAL_ZERO],
      stats.all.p50_us, stats.all.p99_us);
  if (counts->code != 1 || counts->data != data_pages ||
      counts->zero != SCRATCH_PAGES ||
      stats.faults[SSIHV_FAULT_LOCAL_COPY] != 1 + data_pages ||
      stats.faults[SSIHV_FAULT_LOCAL_ZERO] != SCRATCH_PAGES ||
      stats.errors != 0) {
    fprintf(stderr,
            "vmm: expected 1 code, %u data and %u zero pages; the callback "
            "served %u/%u/%u, the pager counted %llu copies, %llu zero, "
            "%llu errors\n",
            data_pages, SCRATCH_PAGES, counts->code, counts->data, counts->zero,
            (unsigned long long)stats.faults[SSIHV_FAULT_LOCAL_COPY],
            (unsigned long long)stats.faults[SSIHV_FAULT_LOCAL_ZERO],
            (unsigned long long)stats.errors);
    return 1;
  }
  return 0;
}

int main(void) {
  ssihv_pager_options options;
  ssihv_pager* pager = NULL;
  struct fill_counts counts = {0, 0, 0};
  struct kvm_run* run = NULL;
  uint32_t got[2] = {0, 0}, want[2];
  int vm = -1, vcpu = -1, status;
  void* ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) return Fail("mmap guest RAM");

  /* Register and start before anything touches the RAM. */
  memset(&options, 0, sizeof(options));
  options.on_error = OnPagerError;
  if (ssihv_pager_create(&options, &pager) != SSIHV_OK)
    return PagerFail("ssihv_pager_create");
  if (ssihv_pager_add_range(pager, ram, RAM_SIZE, 0, 0) != SSIHV_OK)
    return PagerFail("ssihv_pager_add_range");
  if (ssihv_pager_set_source_callback(pager, FillPage, NULL, &counts) !=
      SSIHV_OK)
    return PagerFail("ssihv_pager_set_source_callback");
  if (ssihv_pager_start(pager) != SSIHV_OK)
    return PagerFail("ssihv_pager_start");

  status = CreateVm(ram, &vm, &vcpu, &run);
  if (status == 0) status = RunGuest(vcpu, run, got);
  if (status == 0) {
    Expected(want);
    printf(
        "guest: hash of the data words 0x%08x (expected 0x%08x), "
        "scratch sum %u (expected %u)\n",
        got[0], want[0], got[1], want[1]);
    if (got[0] != want[0] || got[1] != want[1]) status = 1;
  }
  /* The vCPU has stopped: stop the pager (its statistics are then final),
   * then free it, the VM and the RAM. */
  ssihv_pager_stop(pager);
  if (status == 0) status = CheckStats(pager, &counts);
  ssihv_pager_destroy(pager);
  if (vcpu >= 0) close(vcpu);
  if (vm >= 0) close(vm);
  munmap(ram, RAM_SIZE);
  if (status == 0) printf("OK\n");
  return status;
}
