// A small, fully specified PRNG (xoshiro256**, seeded by splitmix64), so a
// seed means the same execution with any standard library.
#ifndef SSIHV_DIRECTORY_SRC_SIM_RNG_H_
#define SSIHV_DIRECTORY_SRC_SIM_RNG_H_

#include <cstdint>

namespace ssihv::directory::sim::internal {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  uint64_t Next() {
    uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, n) (n > 0), by 128-bit multiply (Lemire).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >>
                                 64);
  }
  /// True with probability percent/100.
  bool Percent(uint32_t percent) { return Below(100) < percent; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace ssihv::directory::sim::internal

#endif  // SSIHV_DIRECTORY_SRC_SIM_RNG_H_
