"""ssh_config as OpenSSH applies it, on a real sshd: a host alias, the port an Included file's Match
block gives, HostKeyAlias and GlobalKnownHostsFile."""
import os
import subprocess
import unittest

from test_ssh import SshTest, sshlab


class TestSshConfig(SshTest):
    def test_host_alias_from_ssh_config(self):
        cfg = os.path.join(self.lab.root, "ssh_config")
        with open(cfg, "w") as f:
            f.write(f"Host web-*\n  HostName 127.0.0.1\n  Port {self.sshd.port}\n  User {sshlab.USER}\n"
                    f"  IdentityFile {self.lab.keys.key}\nHost *\n  User nobody\n  Port 1\n")
        inv = self.inventory("web-01\n")
        self.ok(self.runbook(f"""
    ssh.configure {{ config = "{cfg}" }}
    local r = assert(inv:host("web-01"):exec("id -un"))
    assert(r.stdout == "{sshlab.USER}\\n", r.stdout)
""", inv))

    def test_the_port_an_included_file_and_a_match_block_give_is_the_one_used(self):
        # The report this comes from: ssh used the port an Include set, the engine port 22.
        inc = os.path.join(self.lab.root, "conf.d")
        os.makedirs(inc, exist_ok=True)
        with open(os.path.join(inc, "lab.conf"), "w") as f:
            f.write(f"Host web-*\n  HostName 127.0.0.1\nMatch host 127.0.0.1 user {sshlab.USER}\n  Port {self.sshd.port}\n"
                    f"  IdentityFile {self.lab.keys.key}\n")
        cfg = os.path.join(self.lab.root, "ssh_config_include")
        with open(cfg, "w") as f:
            f.write(f"Include {inc}/*.conf\nHost *\n  Port 1\n")
        inv = self.inventory(f"web-02 ansible_user={sshlab.USER}\n")
        self.ok(self.runbook(f"""
    ssh.configure {{ config = "{cfg}" }}
    local r = assert(inv:host("web-02"):exec("id -un"))
    assert(r.stdout == "{sshlab.USER}\\n", r.stdout)
""", inv))
        g = subprocess.run(["ssh", "-G", "-F", cfg, "-l", sshlab.USER, "web-02"], capture_output=True, text=True, timeout=30)
        self.assertIn(f"port {self.sshd.port}\n", g.stdout)

    def test_host_key_alias_and_global_known_hosts_files_are_read(self):
        # The key recorded under an alias (HostKeyAlias), in a file named by GlobalKnownHostsFile:
        # strict checking passes through both; the same host without the alias is unknown.
        t, b = self.sshd.pub()
        glob_kh = os.path.join(self.lab.root, "global_known_hosts")
        with open(glob_kh, "w") as f:
            f.write(f"labnode {t} {b}\n")
        empty = os.path.join(self.lab.root, "empty_kh")
        open(empty, "w").close()
        cfg = os.path.join(self.lab.root, "ssh_config_alias")
        with open(cfg, "w") as f:
            f.write(f"Host aliased\n  HostKeyAlias labnode\nHost *\n  HostName 127.0.0.1\n  Port {self.sshd.port}\n"
                    f"  User {sshlab.USER}\n  IdentityFile {self.lab.keys.key}\n  GlobalKnownHostsFile {glob_kh}\n")
        inv = self.inventory("aliased\nplain\n")
        out = self.ok(self.runbook(f"""
    ssh.configure {{ config = "{cfg}" }}
    assert(assert(inv:host("aliased"):exec("true")).code == 0)
    local r, err = inv:host("plain"):exec("true")
    print("PLAIN", err)
""", inv, kh=empty))
        self.assertIn("PLAIN\thost key unknown", out)
        self.assertEqual(open(empty).read(), "")


if __name__ == "__main__":
    unittest.main()
