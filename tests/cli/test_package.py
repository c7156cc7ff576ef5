"""Installed like any tool: `cmake --install` puts the binary, the stdlib and runbooks it finds
relative to itself, docs, a man page and shell completion under a prefix; `cpack -G DEB` makes a
Debian package whose Depends are runtime libraries only, which installs with dpkg and runs a
shipped runbook from another directory."""
import glob
import os
import shutil
import subprocess
import tempfile
import unittest

BUILD = os.environ.get("ENGINE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))


def run(cmd, cwd=None, timeout=300, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


class TestInstall(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engine-install-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_cmake_install_finds_its_stdlib_and_runbooks_from_anywhere(self):
        prefix = os.path.join(self.dir, "prefix")
        r = run(["cmake", "--install", BUILD, "--prefix", prefix])
        self.assertEqual(r.returncode, 0, r.stderr)
        engine = os.path.join(prefix, "bin", "engine")
        for f in ["share/engine/stdlib/prelude.lua", "share/engine/runbooks/k8s-upgrade.lua", "share/engine/runbooks/lib",
                  "share/man/man1/engine.1", "share/bash-completion/completions/engine", "share/zsh/vendor-completions/_engine",
                  "share/doc/engine/guide.md"]:
            self.assertTrue(os.path.exists(os.path.join(prefix, f)), f)
        # The installed stdlib is the one used: a module only it has is found.
        with open(os.path.join(prefix, "share/engine/stdlib/std/only_installed.lua"), "w") as f:
            f.write('return "from the installed stdlib"\n')
        rb = os.path.join(self.dir, "probe.lua")
        with open(rb, "w") as f:
            f.write('return runbook { name = "probe", run = function() print(require "std.only_installed") end }\n')
        env = {k: v for k, v in os.environ.items() if k != "ENGINE_STDLIB"}
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.mkdir(elsewhere)
        r = run([engine, "run", rb, "--state-dir", os.path.join(self.dir, "state")], cwd=elsewhere, env=env)
        self.assertIn("from the installed stdlib", r.stdout, r.stderr)
        # A shipped runbook by its bare name, from another directory: compiled with its lib/ and the stdlib.
        r = run([engine, "check", "k8s-upgrade", "-e", "version=1.34.3", "-e", "kind=minor"], cwd=elsewhere, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok: runbook 'k8s-upgrade'", r.stdout)
        # bash completion offers the commands.
        r = run(["bash", "-c", f"source {prefix}/share/bash-completion/completions/engine; COMP_WORDS=(engine in); COMP_CWORD=1; _engine; echo ${{COMPREPLY[@]}}"])
        self.assertEqual(r.stdout.strip(), "inventory", r.stderr)
        r = run(["man", "-l", os.path.join(prefix, "share/man/man1/engine.1")], env=dict(env, MANPAGER="cat", MANWIDTH="100"))
        if r.returncode == 0:  # man itself may be absent; the file's sections are checked either way
            self.assertIn("EXIT STATUS", r.stdout)
        page = open(os.path.join(prefix, "share/man/man1/engine.1")).read()
        for section in (".SS run", ".SS inventory", "EXIT STATUS", "ansible-inventory"):
            self.assertIn(section, page)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("dpkg"), "installs a package: root and dpkg")
    def test_the_debian_package_has_runtime_depends_installs_and_runs(self):
        r = run(["cpack", "-G", "DEB", "-B", self.dir], cwd=BUILD, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        debs = glob.glob(os.path.join(self.dir, "engine_*.deb"))
        self.assertEqual(len(debs), 1, os.listdir(self.dir))
        depends = run(["dpkg-deb", "-f", debs[0], "Depends"]).stdout
        for lib in ("libssh2-1", "libcurl4", "liblua5.4-0", "libssl3", "openssh-client", "tzdata"):
            self.assertIn(lib, depends)
        for lib in ("yaml-cpp", "spdlog", "libfmt"):  # compiled in (CMakeLists.txt says why)
            self.assertNotIn(lib, depends)
        self.assertNotIn("-dev", depends)
        self.assertFalse(os.path.exists("/usr/bin/engine"), "an engine is installed already; not touching it")
        self.addCleanup(run, ["dpkg", "-r", "engine"])
        r = run(["dpkg", "-i", debs[0]])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        env = {k: v for k, v in os.environ.items() if k != "ENGINE_STDLIB"}
        r = run(["/usr/bin/engine", "check", "doctor.lua"], cwd=self.dir, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok: runbook 'doctor'", r.stdout)
        self.assertTrue(os.path.exists("/usr/share/engine/stdlib/prelude.lua"))
        self.assertRegex(run(["/usr/bin/engine", "--version"]).stdout, r"^engine \d+\.\d+\.\d+ ")


if __name__ == "__main__":
    unittest.main()
