// An Ansible inventory: hosts, groups (a DAG under `all`), and their variables, resolved with
// Ansible's precedence. Loaded from YAML or INI files, directories of them, or "h1,h2," lists.
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace engine::inventory {

using json = nlohmann::json;

struct Group {
  std::string name;
  std::vector<std::string> hosts;     // direct members, in inventory order
  std::set<std::string> host_set;     // the same, for membership tests on large groups
  std::vector<std::string> children;  // in inventory order
  std::vector<std::string> parents;
  json vars = json::object();       // from the inventory source
  json file_vars = json::object();  // from group_vars/
  int depth = 0;
};

struct Host {
  std::string name;
  json vars = json::object();       // from the inventory source
  json file_vars = json::object();  // from host_vars/
  std::vector<std::string> groups;  // direct membership, in order
};

// How to reach a host, from Ansible's connection variables (the ansible_ssh_* aliases too).
struct Connection {
  std::string address;  // ansible_host, else the inventory name
  int port = 0;         // 0: not set (ssh config or 22 decides)
  std::string user;
  std::string private_key_file;
  // ansible_become: commands without their own `sudo` option run under sudo (Ansible's default
  // become_method); become_user applies to those, become_password to every sudo of the host.
  bool become = false;
  std::string become_user;
  std::string become_password;  // secret
  std::string ssh_common_args;
};

class Inventory {
 public:
  Inventory();

  // Building (the loaders use these).
  Group& add_group(const std::string& name);
  Host& add_host(const std::string& name);
  void add_host_to_group(const std::string& group, const std::string& host);
  // Throws std::invalid_argument when the edge would make a cycle.
  void add_child(const std::string& parent, const std::string& child);
  // Ties every parentless group to `all`, fills `ungrouped`, computes group depths.
  void reconcile();

  // Reading.
  const Group* group(const std::string& name) const;
  const Host* host(const std::string& name) const;
  Group* mutable_group(const std::string& name);
  Host* mutable_host(const std::string& name);
  const std::vector<std::string>& group_names() const { return group_order_; }
  const std::vector<std::string>& host_names() const { return host_order_; }

  // Hosts of a group and of every group below it, in inventory order, within the limit.
  std::vector<std::string> hosts_of(const std::string& group) const;
  // Every group the host is in, `all` and ancestors included.
  std::vector<std::string> groups_of(const std::string& host) const;
  // The host's variables with Ansible's precedence, plus inventory_hostname and group_names.
  json vars_of(const std::string& host) const;
  // The same precedence, only the variables a connection reads (ansible_*, engine_*): what SSH
  // resolves a host from. A kubespray group_vars/all holds hundreds of others, copied for nothing.
  json connection_vars_of(const std::string& host) const;
  Connection connection_of(const std::string& host) const;

  // Ansible host patterns ("web:&prod:!web3", "node[1:3]*", "~regex", "grp[0]").
  // Throws ConfigError naming a term that matches nothing.
  std::vector<std::string> match(const std::string& pattern) const;
  // --limit: from now on only these hosts are visible.
  void limit(const std::string& pattern);
  bool visible(const std::string& host) const { return !limit_ || limit_->count(host) > 0; }
  // The hosts `pattern` would match without --limit that --limit hides (none without one): a
  // runbook that must see a whole group (every etcd member, to count a quorum) says what was left
  // out instead of counting too few.
  std::vector<std::string> hidden(const std::string& pattern) const;

  // The directories beside the inventory sources whose group_vars/ and host_vars/ were read.
  std::vector<std::string> source_dirs;
  // Files of inventory directories skipped by Ansible's ignore rules (the CLI can show them).
  std::vector<std::string> skipped;

 private:
  std::vector<std::string> match_term(const std::string& term) const;
  std::vector<std::string> ancestors(const std::string& group) const;
  json merged_vars(const std::string& host, bool all_vars) const;

  std::map<std::string, Group> groups_;
  std::vector<std::string> group_order_;
  std::map<std::string, Host> hosts_;
  std::vector<std::string> host_order_;
  std::optional<std::set<std::string>> limit_;
};

// Ansible's connection variables out of a host's variables (what connection_of uses).
Connection connection_from_vars(const std::string& name, const json& vars);

// Loads one or more sources: a YAML/JSON file, an INI file, a directory of them, or a comma list of
// hosts ("node1,node2," as ansible -i takes it). group_vars/ and host_vars/ beside each source are
// read. Errors are ConfigError with file:line:column.
Inventory load(const std::vector<std::string>& sources);

// Loaders, exposed for tests.
void load_yaml(Inventory& inv, const std::string& path);
void load_ini(Inventory& inv, const std::string& path);
void load_vars_dirs(Inventory& inv, const std::string& dir);
// Executable (or #!) files are inventory scripts, as Ansible's script plugin decides.
bool is_inventory_script(const std::string& path);
void load_script(Inventory& inv, const std::string& path);
// The JSON an inventory script or `ansible-inventory --list` prints; script: the program to ask
// for --host NAME when there is no _meta ("" for a file).
bool looks_like_list_json(const json& doc);
void load_list_json(Inventory& inv, const std::string& source, const json& doc, const std::string& script);
// Through `ansible-inventory -i PATH --list` (plugin configs, TOML); why: what the file is.
void load_with_ansible(Inventory& inv, const std::string& path, const std::string& why);
// Whether Ansible skips this name in an inventory directory (hidden, group_vars, host_vars,
// vars_plugins, INVENTORY_IGNORE_EXTS and INVENTORY_IGNORE_PATTERNS, from the environment as
// ANSIBLE_INVENTORY_IGNORE and ANSIBLE_INVENTORY_IGNORE_REGEX as Ansible reads them).
bool ignored_in_inventory_dir(const std::string& name);

// A Python literal as ast.literal_eval reads it (tuples and sets become lists); nullopt when the
// text is not one. Ansible reads every INI value this way.
std::optional<json> python_literal(std::string_view text);

// "node[01:03]" → node01, node02, node03; "[a:c]" letters; "[1:9:2]" stride. Throws on a bad range.
std::vector<std::string> expand_host_range(const std::string& pattern);

// Splits "name:port" (not IPv6). Returns the name and, when present, the port.
std::pair<std::string, std::optional<int>> split_port(const std::string& name);

}  // namespace engine::inventory
