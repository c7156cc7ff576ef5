// Host patterns for --limit and inv:hosts(), with Ansible's evaluation order.
#include <catch2/catch.hpp>

#include "engine/core/errors.hpp"
#include "engine/inventory/inventory.hpp"

using namespace engine::inventory;
using names = std::vector<std::string>;

namespace {
Inventory sample() {
  Inventory inv;
  for (auto h : {"cp1", "cp2", "cp3"}) inv.add_host_to_group("k8s-cp", h);
  for (auto h : {"w1", "w2", "w3", "w10"}) inv.add_host_to_group("k8s-worker", h);
  for (auto h : {"cp1", "cp2", "cp3"}) inv.add_host_to_group("etcd", h);
  inv.add_host_to_group("zone-a", "cp1");
  inv.add_host_to_group("zone-a", "w1");
  inv.add_child("k8s", "k8s-cp");
  inv.add_child("k8s", "k8s-worker");
  inv.reconcile();
  return inv;
}
}  // namespace

TEST_CASE("patterns: names, groups, unions, intersections, exclusions") {
  auto inv = sample();
  CHECK(inv.match("cp2") == names{"cp2"});
  CHECK(inv.match("k8s-cp") == names{"cp1", "cp2", "cp3"});
  CHECK(inv.match("k8s-cp:k8s-worker") == names{"cp1", "cp2", "cp3", "w1", "w2", "w3", "w10"});
  CHECK(inv.match("k8s-cp,w2") == names{"cp1", "cp2", "cp3", "w2"});
  CHECK(inv.match("k8s:&zone-a") == names{"cp1", "w1"});
  CHECK(inv.match("k8s:!k8s-cp:!w10") == names{"w1", "w2", "w3"});
  CHECK(inv.match("!k8s-worker") == names{"cp1", "cp2", "cp3"});  // only exclusions start from all
  CHECK(inv.match("&etcd:zone-a") == names{"cp1"});               // unions first, whatever the order
}

TEST_CASE("patterns: globs, regexes and subscripts") {
  auto inv = sample();
  CHECK(inv.match("w?") == names{"w1", "w2", "w3"});
  CHECK(inv.match("w*") == names{"w1", "w2", "w3", "w10"});
  CHECK(inv.match("k8s-*") == names{"cp1", "cp2", "cp3", "w1", "w2", "w3", "w10"});
  CHECK(inv.match("~^w1") == names{"w1", "w10"});
  CHECK(inv.match("k8s-worker[0]") == names{"w1"});
  CHECK(inv.match("k8s-worker[-1]") == names{"w10"});
  CHECK(inv.match("k8s-worker[1:2]") == names{"w2", "w3"});
  CHECK(inv.match("k8s-worker[2:]") == names{"w3", "w10"});
}

TEST_CASE("an unknown group or host in a pattern is named, with a suggestion") {
  auto inv = sample();
  CHECK_THROWS_WITH(inv.match("k8s-wrker"), "no host or group matches 'k8s-wrker' (did you mean 'k8s-worker'?)");
  CHECK_THROWS_WITH(inv.match("cp1:!nothere"), Catch::Contains("no host or group matches 'nothere'"));
  CHECK_THROWS_WITH(inv.match("q*"), Catch::Contains("no host or group matches 'q*'"));
  CHECK_THROWS_WITH(inv.match("k8s-cp[7]"), Catch::Contains("the subscript selects no host"));
}

TEST_CASE("--limit hides every other host from groups and patterns") {
  auto inv = sample();
  inv.limit("k8s-worker:!w3");
  CHECK(inv.hosts_of("all") == names{"w1", "w2", "w10"});
  CHECK(inv.hosts_of("k8s-cp").empty());
  CHECK(inv.match("zone-a") == names{"w1"});
  CHECK_FALSE(inv.visible("cp1"));
}

TEST_CASE("hidden names what --limit hides of a pattern") {
  auto inv = sample();
  CHECK(inv.hidden("all").empty());  // no --limit: nothing hidden
  inv.limit("k8s-worker:!w3");
  CHECK(inv.hidden("k8s-worker") == names{"w3"});
  CHECK(inv.hidden("zone-a") == names{"cp1"});
  CHECK(inv.hidden("k8s-cp:w1") == names{"cp1", "cp2", "cp3"});
  CHECK(inv.hidden("w1:w2").empty());
  CHECK(inv.hosts_of("k8s-worker") == names{"w1", "w2", "w10"});  // the limit itself stays
}
