#include "ssihv/testing/temp_dir.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

namespace ssihv::testing {

TempDir::TempDir(const std::string& prefix) {
  std::string t = "/tmp/" + prefix + ".XXXXXX";
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  path = t;
}

TempDir::~TempDir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }

std::string TempDir::Write(const std::string& name,
                           const std::vector<uint8_t>& bytes) const {
  const std::string p = path + "/" + name;
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
  return p;
}

std::string TempDir::Write(const std::string& name,
                           const std::string& text) const {
  return Write(name, std::vector<uint8_t>(text.begin(), text.end()));
}

}  // namespace ssihv::testing
