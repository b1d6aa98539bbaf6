#include "fc_client.h"

#include <linux/userfaultfd.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "fc_sys.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::fc_client {

using base::UniqueFd;

absl::StatusOr<UniqueFd> CreateUffd() {
  SSIHV_ASSIGN_OR_RETURN(UniqueFd uffd, sys::OpenUffd());
  SSIHV_RETURN_IF_ERROR(sys::UffdApi(uffd.get(), UFFD_FEATURE_EVENT_REMOVE));
  return uffd;
}

absl::Status RegisterMissing(int uffd, uint8_t* host, uint64_t size) {
  return sys::UffdRegisterMissing(uffd, reinterpret_cast<uint64_t>(host), size);
}

std::string MappingsJson(const std::vector<RegionSpec>& regions,
                         const std::vector<uint64_t>& hosts,
                         PageSizeField field, uint64_t page_size) {
  nlohmann::json array = nlohmann::json::array();
  for (size_t i = 0; i < regions.size(); ++i) {
    nlohmann::json r = {{"base_host_virt_addr", hosts[i]},
                        {"size", regions[i].size},
                        {"offset", regions[i].offset}};
    if (field != PageSizeField::kPageSizeKib) r["page_size"] = page_size;
    if (field != PageSizeField::kPageSize) r["page_size_kib"] = page_size;
    array.push_back(r);
  }
  return array.dump();
}

absl::StatusOr<UniqueFd> SendHandshake(const std::string& socket,
                                       const std::string& body,
                                       const std::vector<int>& fds) {
  SSIHV_ASSIGN_OR_RETURN(UniqueFd conn, sys::ConnectUnix(socket));
  SSIHV_RETURN_IF_ERROR(sys::SendWithFds(conn.get(), body, fds));
  return conn;
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::Restore(const std::string& socket,
                                                const VmOptions& options) {
  std::unique_ptr<Vm> vm(new Vm());
  std::vector<uint64_t> hosts;
  for (const RegionSpec& spec : options.regions) {
    SSIHV_ASSIGN_OR_RETURN(base::MappedRegion m,
                           base::MappedRegion::Anonymous(spec.size));
    hosts.push_back(reinterpret_cast<uint64_t>(m.data()));
    vm->regions_.push_back({spec, std::move(m)});
  }
  SSIHV_ASSIGN_OR_RETURN(vm->uffd_, CreateUffd());
  for (const Region& r : vm->regions_) {
    SSIHV_RETURN_IF_ERROR(
        RegisterMissing(vm->uffd_.get(), r.memory.data(), r.spec.size));
  }
  SSIHV_ASSIGN_OR_RETURN(
      vm->conn_,
      SendHandshake(
          socket, MappingsJson(options.regions, hosts, options.page_size_field),
          {vm->uffd_.get()}));
  if (!options.keep_connection) vm->conn_.Reset();
  return vm;
}

}  // namespace ssihv::fc_client
