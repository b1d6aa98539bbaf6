#include "options.h"

#include <catch2/catch.hpp>

namespace ssihv::vmm {
namespace {

TEST_CASE("ssihv-vmm flags: both forms, defaults, --append") {
  auto o = ParseVmmArgs({"--kernel", "bz", "--initrd=rd", "--append", "quiet",
                         "--stats-json", "s.json", "--pager-threads=2"});
  REQUIRE(o.ok());
  CHECK(o->kernel == "bz");
  CHECK(o->initrd == "rd");
  CHECK(o->cmdline == std::string(kDefaultCmdline) + " quiet");
  CHECK(o->config_path.empty());
  CHECK(o->stats_json == "s.json");
  CHECK(o->pager_threads == 2);
  CHECK(o->fault_around_kib == 2048);
  CHECK_FALSE(o->trace_io);
  auto c = ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--cmdline", "x y",
                         "--config", "c.json"});
  REQUIRE(c.ok());
  CHECK(c->cmdline == "x y");
  CHECK(c->config_path == "c.json");
  auto f = ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--fault-around",
                         "0", "--trace-io"});
  REQUIRE(f.ok());
  CHECK(f->fault_around_kib == 0);
  CHECK(f->trace_io);
  CHECK(f->irqchip == Irqchip::kKernel);  // the default
  auto u =
      ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--irqchip", "user"});
  REQUIRE(u.ok());
  CHECK(u->irqchip == Irqchip::kUser);
  auto k =
      ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--irqchip=kernel"});
  REQUIRE(k.ok());
  CHECK(k->irqchip == Irqchip::kKernel);
  CHECK(k->peer_silence_s == 5);  // the default
  auto s = ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--config", "c",
                         "--node", "1", "--peer-silence", "30"});
  REQUIRE(s.ok());
  CHECK(s->peer_silence_s == 30);
  CHECK(s->service_nice == 0);  // the default: inherited
  auto n = ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--config", "c",
                         "--node", "1", "--service-nice", "-10"});
  REQUIRE(n.ok());
  CHECK(n->service_nice == -10);
}

TEST_CASE("ssihv-vmm --guest-tuning: only with --node; what it appends") {
  auto t = ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--config", "c",
                         "--node", "0", "--guest-tuning"});
  REQUIRE(t.ok());
  CHECK(t->guest_tuning);
  CHECK(t->cmdline == kDefaultCmdline);  // node 0 appends at load
  auto off = ParseVmmArgs(
      {"--kernel", "bz", "--initrd", "rd", "--config", "c", "--node", "0"});
  REQUIRE(off.ok());
  CHECK_FALSE(off->guest_tuning);
  auto one =
      ParseVmmArgs({"--kernel", "bz", "--initrd", "rd", "--guest-tuning"});
  REQUIRE_FALSE(one.ok());
  CHECK_THAT(std::string(one.status().message()),
             Catch::Contains("--guest-tuning: only with --node"));

  const std::string rest =
      " numa_balancing=disable sysctl.vm.compaction_proactiveness=0";
  CHECK(GuestTuningArgs("quiet", 4) == " nohz_full=1-3" + rest);
  CHECK(GuestTuningArgs("quiet", 2) == " nohz_full=1" + rest);
  CHECK(GuestTuningArgs("quiet", 1) == rest);  // no CPU to make tickless
  // The user's own values stand; a longer name is not the parameter.
  CHECK(GuestTuningArgs("nohz_full=2-3 numa_balancing=enable", 4) ==
        " sysctl.vm.compaction_proactiveness=0");
  CHECK(GuestTuningArgs("sysctl.vm.compaction_proactiveness=20 nohz_full", 8) ==
        " numa_balancing=disable");
  CHECK(GuestTuningArgs("nohz_fullx=1 xnuma_balancing=1", 3) ==
        " nohz_full=1-2" + rest);
  // isolcpus= with the nohz flag names the tickless CPUs already.
  CHECK(GuestTuningArgs("isolcpus=nohz,domain,2-3", 4) == rest);
  CHECK(GuestTuningArgs("isolcpus=2-3", 4) == " nohz_full=1-3" + rest);
  // After "--" the words are init's, not the kernel's.
  CHECK(GuestTuningArgs("quiet -- nohz_full=1 numa_balancing=x", 2) ==
        " nohz_full=1" + rest);
  CHECK(WithKernelParams("quiet ro -- init-arg", " a=1") ==
        "quiet ro a=1 -- init-arg");
  CHECK(WithKernelParams("quiet ro", " a=1") == "quiet ro a=1");
  CHECK(WithKernelParams("-- x", " a=1") == " a=1 -- x");
}

TEST_CASE("ssihv-vmm flag errors name the flag") {
  auto msg = [](std::vector<std::string> args) {
    auto o = ParseVmmArgs(args);
    REQUIRE_FALSE(o.ok());
    return std::string(o.status().message());
  };
  CHECK_THAT(msg({"--initrd", "rd"}), Catch::Contains("--kernel"));
  CHECK_THAT(msg({"--kernel", "bz"}), Catch::Contains("--initrd"));
  CHECK_THAT(msg({"--kernel"}), Catch::Contains("needs a value"));
  CHECK_THAT(msg({"--kernel", "bz", "--initrd", "rd", "--bogus"}),
             Catch::Contains("--bogus"));
  CHECK_THAT(msg({"--kernel", "bz", "--initrd", "rd", "--pager-threads", "0"}),
             Catch::Contains("--pager-threads"));
  CHECK_THAT(msg({"--kernel", "bz", "--initrd", "rd", "--fault-around", "48"}),
             Catch::Contains("--fault-around"));
  CHECK_THAT(msg({"--kernel", "bz", "--initrd", "rd", "--fault-around", "2"}),
             Catch::Contains("--fault-around"));
  CHECK_THAT(msg({"--kernel", "bz", "--initrd", "rd", "--irqchip", "split"}),
             Catch::Contains("--irqchip: 'split' is not 'kernel' or 'user'"));
  CHECK_THAT(msg({"--kernel", "bz", "--initrd", "rd", "--irqchip"}),
             Catch::Contains("--irqchip: needs a value"));
  for (const char* bad : {"1", "601", "x", ""}) {
    CHECK(msg({"--kernel", "bz", "--initrd", "rd", "--peer-silence", bad}) ==
          std::string("--peer-silence: '") + bad +
              "' is not a number of seconds in 2..600");
  }
  for (const char* bad : {"-21", "20", "x", ""}) {
    CHECK(msg({"--kernel", "bz", "--initrd", "rd", "--service-nice", bad}) ==
          std::string("--service-nice: '") + bad +
              "' is not a nice value in -20..19");
  }
  auto help = ParseVmmArgs({"--help"});
  REQUIRE(help.ok());
  CHECK(help->help);
  CHECK_THAT(VmmUsage(), Catch::Contains("--kernel") &&
                             Catch::Contains("Ctrl-A x") &&
                             Catch::Contains("--irqchip kernel|user"));
}

}  // namespace
}  // namespace ssihv::vmm
