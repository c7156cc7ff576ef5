// engine/inventory: Ansible inventories load as Ansible reads them, kubespray's included.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "engine/core/errors.hpp"
#include "engine/inventory/inventory.hpp"
#include "scratch.hpp"

using namespace engine::inventory;
using Catch::Contains;

namespace {
const std::string F = std::string(FIXTURES_DIR) + "/inventory/";
using names = std::vector<std::string>;

std::string load_error(const std::string& file) {
  try {
    load({F + file});
  } catch (const engine::ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("kubespray's sample inventory.ini (hosts commented out) loads with empty groups") {
  auto inv = load({F + "kubespray-sample/inventory.ini"});
  CHECK(inv.host_names().empty());
  REQUIRE(inv.group("kube_control_plane"));
  REQUIRE(inv.group("etcd"));
  CHECK(inv.group("etcd")->children == names{"kube_control_plane"});
  CHECK(inv.hosts_of("etcd").empty());
  CHECK(inv.group("kube_node"));
}

TEST_CASE("seed 001's inventory.ini: [etcd:children] plus [etcd] hosts, [kube_node:children]") {
  auto inv = load({F + "kubespray-ini/inventory.ini"});
  CHECK(inv.hosts_of("kube_control_plane") == names{"node1", "node2"});
  CHECK(inv.hosts_of("etcd") == names{"node3", "node1", "node2"});  // own hosts first, as Ansible lists them
  CHECK(inv.hosts_of("kube_node") == names{"node4", "node3", "node1", "node2"});
  CHECK(inv.hosts_of("all") == names{"node1", "node2", "node3", "node4"});
  auto v = inv.vars_of("node3");
  CHECK(v["ip"] == "10.1.1.13");
  CHECK(v["etcd_member_name"] == "etcd3");
  CHECK(v["ansible_python_interpreter"] == "/usr/bin/python3");
  // group_vars/all/all.yml (a directory), group_vars/etcd.yml; k8s_cluster is not a group here.
  CHECK(v["bin_dir"] == "/usr/local/bin");
  CHECK(v["loadbalancer_apiserver_port"] == 6443);
  CHECK(v["ignore_assert_errors"] == false);
  CHECK(v["etcd_deployment_type"] == "host");
  CHECK_FALSE(v.contains("kube_version"));
  CHECK(v["group_names"] == nlohmann::json({"etcd", "kube_node"}));
  auto c = inv.connection_of("node3");
  CHECK(c.address == "10.1.1.13");
  CHECK(c.user == "ubuntu");
  CHECK(c.port == 0);
}

TEST_CASE("seed 001's hosts.yaml from inventory.py loads unchanged") {
  auto inv = load({F + "kubespray-yaml/hosts.yaml"});
  CHECK(inv.hosts_of("all") == names{"node1", "node2", "node3", "node4"});
  CHECK(inv.hosts_of("kube_control_plane") == names{"node1", "node2"});
  CHECK(inv.hosts_of("etcd") == names{"node1", "node2", "node3"});
  CHECK(inv.hosts_of("k8s_cluster") == names{"node1", "node2", "node3", "node4"});
  CHECK(inv.hosts_of("calico_rr").empty());
  CHECK(inv.vars_of("node4")["access_ip"] == "10.1.1.14");
  CHECK(inv.connection_of("node2").address == "10.1.1.12");
  // k8s_cluster is deeper than kube_node's other parent `all`, so it orders after it.
  CHECK(inv.group("kube_node")->depth == 2);
}

TEST_CASE("variables follow Ansible's precedence") {
  auto inv = load({F + "precedence/hosts.yml"});
  // group_vars/ beat inventory group vars; child groups beat parents; host beats groups.
  CHECK(inv.vars_of("h1")["level"] == "child-group_vars");
  CHECK(inv.vars_of("h1")["depth_test"] == "child");
  CHECK(inv.vars_of("h1")["only_all"] == "from-all");
  CHECK(inv.vars_of("h1")["all_file"] == true);
  CHECK(inv.vars_of("h2")["level"] == "h2-inventory");
  CHECK(inv.vars_of("h3")["level"] == "h3-host_vars");
  // Same depth: alphabetical, the later name wins; ansible_group_priority outranks that.
  CHECK(inv.vars_of("h4")["same_depth"] == "zzz");
  CHECK(inv.vars_of("h5")["prio"] == "low");
  // group_vars on `all` lose to every other group's inventory vars.
  CHECK(inv.vars_of("h4")["level"] == "all-group_vars");
  // YAML 1.1 typing as PyYAML does it; quoted scalars stay strings.
  auto h3 = inv.vars_of("h3");
  CHECK(h3["port_as_string"] == "22");
  CHECK(h3["octal"] == 493);
  CHECK(h3["hex"] == 31);
  CHECK(h3["inventory_hostname"] == "h3");
}

TEST_CASE("connection_vars_of: vars_of's ansible_* and engine_* variables, the same values, nothing else") {
  for (const auto& source : {F + "precedence/hosts.yml", F + "kubespray-yaml/hosts.yaml", F + "kubespray-ini/inventory.ini"}) {
    auto inv = load({source});
    REQUIRE(!inv.host_names().empty());
    for (const auto& h : inv.host_names()) {
      INFO(source << " " << h);
      nlohmann::json want = nlohmann::json::object(), all = inv.vars_of(h);
      for (const auto& [k, v] : all.items())
        if (k.rfind("ansible_", 0) == 0 || k.rfind("engine_", 0) == 0) want[k] = v;
      CHECK(inv.connection_vars_of(h) == want);
      CHECK(inv.connection_of(h).address == connection_from_vars(h, inv.vars_of(h)).address);
    }
  }
}

TEST_CASE("INI host lines: ranges, ports, quoting, comments, literal values") {
  Scratch scratch("engine-ini-test");
  auto dir = scratch.path;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "hosts") << "loose1\n"
                                  "[web]\n"
                                  "web[01:03].example.com ansible_user=deploy # the web tier\n"
                                  "db-[a:b] ansible_port=2200\n"
                                  "bastion:2222 ansible_ssh_common_args='-o ProxyJump=jump@gw' count=5 ratio=0.5 on=True\n"
                                  "[web:vars]\n"
                                  "http_port = 8080\n"
                                  "motd=\"hello world\"\n";
  auto inv = load({(dir / "hosts").string()});
  CHECK(inv.hosts_of("web") == names{"web01.example.com", "web02.example.com", "web03.example.com", "db-a", "db-b", "bastion"});
  CHECK(inv.hosts_of("ungrouped") == names{"loose1"});
  auto b = inv.vars_of("bastion");
  CHECK(b["ansible_port"] == 2222);
  CHECK(b["ansible_ssh_common_args"] == "-o ProxyJump=jump@gw");
  CHECK(b["count"] == 5);
  CHECK(b["ratio"] == 0.5);
  CHECK(b["on"] == true);
  CHECK(b["http_port"] == 8080);
  CHECK(b["motd"] == "hello world");
  CHECK(inv.connection_of("db-b").port == 2200);
  CHECK(inv.connection_of("web02.example.com").user == "deploy");
  CHECK(inv.connection_of("bastion").ssh_common_args == "-o ProxyJump=jump@gw");
}

TEST_CASE("malformed inventories are reported with file:line:column") {
  CHECK_THAT(load_error("bad/unclosed.yml"), Contains("bad/unclosed.yml:6:1: "));
  CHECK_THAT(load_error("bad/typo.yml"),
             Contains("bad/typo.yml:2:3: unexpected key 'host' in group 'all' (did you mean 'hosts'?)"));
  CHECK_THAT(load_error("bad/quote.ini"), Contains("bad/quote.ini:2:19: unterminated \" quote"));
  CHECK_THAT(load_error("bad/novalue.ini"),
             Contains("bad/novalue.ini:2:6: expected key=value host variable, got 'ansible_host'"));
  CHECK_THAT(load_error("bad/section.ini"), Contains("bad/section.ini:1:6: section [web:child] has unknown type 'child'"));
  CHECK_THAT(load_error("bad/children.ini"), Contains("bad/children.ini:5:1: [all:children] names group 'webz', which is never defined"));
  CHECK_THAT(load_error("nope.yml"), Contains("no such inventory file"));
}

TEST_CASE("a comma list is an inventory, as ansible -i takes it") {
  auto inv = load({"a,b:2201,"});
  CHECK(inv.hosts_of("all") == names{"a", "b"});
  CHECK(inv.connection_of("b").port == 2201);
}

TEST_CASE("a group loop is refused") {
  Inventory inv;
  inv.add_child("a", "b");
  inv.add_child("b", "c");
  CHECK_THROWS_WITH(inv.add_child("c", "a"), Contains("makes a loop"));
}

TEST_CASE("host ranges expand and reject nonsense") {
  CHECK(expand_host_range("n[1:3]") == names{"n1", "n2", "n3"});
  CHECK(expand_host_range("n[08:10]") == names{"n08", "n09", "n10"});
  CHECK(expand_host_range("n[0:10:5]") == names{"n0", "n5", "n10"});
  CHECK(expand_host_range("r[a:b]-[1:2]") == names{"ra-1", "ra-2", "rb-1", "rb-2"});
  CHECK_THROWS(expand_host_range("n[3:1]"));
  CHECK_THROWS(expand_host_range("n[1:x]"));
  CHECK(split_port("h:22").second == 22);
  CHECK_FALSE(split_port("fe80::1").second);
  CHECK(split_port("n[1:3]:2222").second == 2222);
}

TEST_CASE("INI values read as Python numbers exactly where ast.literal_eval takes them") {
  auto num = [](const char* s) { return engine::inventory::python_literal(s); };
  CHECK(*num("0x1F") == 31);
  CHECK(*num("0X_1f") == 31);
  CHECK(*num("0o17") == 15);
  CHECK(*num("0b1_01") == 5);
  CHECK(*num("1_000") == 1000);
  CHECK(*num("00") == 0);
  CHECK(*num("0_0") == 0);
  CHECK(*num("-7") == -7);
  CHECK(*num("1.5") == 1.5);
  CHECK(*num("1.") == 1.0);
  CHECK(*num(".5") == 0.5);
  CHECK(*num("1e3") == 1000.0);
  CHECK(*num("1.E+2") == 100.0);
  CHECK(*num("1_0.2_5e-1_0") == 10.25e-10);
  CHECK(*num("007.5") == 7.5);  // a float may start with zeros, an int may not
  for (const char* s : {"010", "1__0", "1_", "0x", "0x1g", "0b2", "0o8", "1j", "1.2.3", "1e", "1e+", ".", "1_.5", "1._5", "0_", "9" "9999999999999999999"})
    CHECK_FALSE(num(s).has_value());
}

TEST_CASE("INI section and :children lines: what Ansible's plugin takes and what it refuses") {
  Scratch scratch("engine-ini-sections");
  std::filesystem::create_directories(scratch.path);
  auto load_text = [&](const std::string& text) {
    std::ofstream(scratch.path / "hosts") << text;
    return load({(scratch.path / "hosts").string()});
  };
  auto error_of = [&](const std::string& text) -> std::string {
    try {
      load_text(text);
    } catch (const engine::ConfigError& e) {
      return e.what();
    }
    return "";
  };
  auto inv = load_text("[web] ; the web tier\na\n[all:children] # every group\nweb # the tier\n[web:vars]  \nx=1\n");
  CHECK(inv.hosts_of("web") == names{"a"});
  CHECK(inv.vars_of("a")["x"] == 1);
  for (const char* bad : {"[web:]\n", "[ web]\n", "[web] a\n", "[web:vars\n", "[]\n"})
    CHECK_THAT(error_of(bad), Contains("hosts:1:1: invalid section"));
  CHECK_THAT(error_of("[all:children]\nweb ; no\n"), Contains("hosts:2:1: expected a group name in [all:children]"));
}

TEST_CASE("INI values that are plainly strings stay strings; literals that start like them still parse") {
  auto lit = [](const char* s) { return engine::inventory::python_literal(s); };
  for (const char* s : {"127.0.0.1", "node-1.example.com", "engine", "_x", "Truex", "rbx'a'", "10.0.0.1/24", "0755",
                        "1e5x", ".hidden", "/usr/bin/python3"})
    CHECK_FALSE(lit(s).has_value());
  CHECK(*lit("True") == true);
  CHECK(lit("None")->is_null());
  CHECK(*lit("  False") == false);
  CHECK(*lit("b'x'") == "x");
  CHECK(*lit("rb\"x\"") == "x");
  CHECK(*lit("u'x'") == "x");
  CHECK(*lit("1, 2") == json::array({1, 2}));
  CHECK(*lit("1 ,") == json::array({1}));
  CHECK(*lit(".5 ") == 0.5);
}
