"""Files on a host over SFTP against a real OpenSSH server: atomic uploads, downloads, reads, stat,
sudo writes, cancellation before the rename, and symlinks refused where the engine writes as root."""
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import sshd as sshlab  # noqa: E402
from test_ssh import SshTest  # noqa: E402


class TestFiles(SshTest):
    def test_sftp_upload_of_50mb_arrives_intact_and_atomically(self):
        src = os.path.join(self.lab.root, "big.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(50 * 1024 * 1024))
        want = hashlib.sha256(open(src, "rb").read()).hexdigest()
        home = tempfile.mkdtemp(prefix="engine-upload-dir-")  # the login user's own directory
        self.addCleanup(shutil.rmtree, home, True)
        os.chown(home, sshlab.pwd.getpwnam(sshlab.USER).pw_uid, -1)
        dest = f"{home}/engine-upload.bin"
        with open(dest, "wb") as f:
            f.write(b"old version")
        os.chmod(dest, 0o666)
        seen = set()
        stop = threading.Event()

        def watch():  # the destination is the old file or the whole new one, never a part
            while not stop.is_set():
                try:
                    seen.add(os.path.getsize(dest))
                except FileNotFoundError:
                    seen.add(-1)
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        back = os.path.join(self.lab.root, "back.bin")
        self.ok(self.runbook(f"""
    local h = inv:host("n1")
    local r = assert(h:upload("{src}", "{dest}", {{ mode = "0640" }}))
    assert(r.bytes == 52428800, r.bytes)
    local st = assert(h:stat("{dest}"))
    assert(st.size == 52428800 and st.mode == 416 and st.type == "file", st.mode)
    assert(h:download("{dest}", "{back}"))
""", self.inventory(self.node()), timeout=300))
        stop.set()
        t.join()
        self.assertEqual(seen - {11, 52428800}, set())
        self.assertEqual(hashlib.sha256(open(dest, "rb").read()).hexdigest(), want)
        self.assertEqual(hashlib.sha256(open(back, "rb").read()).hexdigest(), want)
        self.assertEqual(os.listdir(home), ["engine-upload.bin"])  # no temporary file left behind

    def test_an_upload_cancelled_before_its_rename_never_renames(self):
        src = os.path.join(self.lab.root, "cancel-big.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(50 * 1024 * 1024))
        home = tempfile.mkdtemp(prefix="engine-cancel-dir-")
        self.addCleanup(shutil.rmtree, home, True)
        os.chown(home, sshlab.pwd.getpwnam(sshlab.USER).pw_uid, -1)
        dest, back = f"{home}/manifest.yaml", os.path.join(self.lab.root, "cancel-back.bin")
        with open(dest, "w") as f:
            f.write("old\n")
        out = self.ok(self.runbook(f"""
    local h = inv:host("n1")
    assert(h:exec("true"))  -- connected first: the deadline falls inside the transfer itself
    -- 50 MiB in 50 ms would be 1 GB/s through SFTP on loopback: well beyond libssh2's pace
    print("UP", timeout(0.05, function() return h:upload("{src}", "{dest}") end))
    assert(h:exec("true"))  -- the session was used meanwhile
    print("DOWN", timeout(0.05, function() return h:download("{src}", "{back}") end))
    sleep(3)  -- time for a transfer that went on regardless to have renamed
""", self.inventory(self.node()), timeout=120))
        self.assertIn("UP\tnil\ttimeout", out)
        self.assertIn("DOWN\tnil\ttimeout", out)
        with open(dest) as f:
            self.assertEqual(f.read(), "old\n")  # never replaced
        self.assertEqual(os.listdir(home), ["manifest.yaml"])  # and its temporary file removed
        self.assertFalse(os.path.exists(back) or os.path.exists(back + ".part"))

    def test_a_download_refuses_a_symlink_at_its_part_file_or_destination(self):
        d = tempfile.mkdtemp(prefix="engine-dl-")
        self.addCleanup(shutil.rmtree, d, True)
        victim = os.path.join(d, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.symlink(victim, os.path.join(d, "a.part"))
        os.symlink(victim, os.path.join(d, "b"))
        out = self.ok(self.runbook(f"""
    local h = inv:host("n1")
    for _, name in ipairs {{ "a", "b" }} do
      local r, err, detail = h:download("/etc/hostname", "{d}/" .. name)
      print("ERR", name, err, detail)
    end
    assert(h:download("/etc/hostname", "{d}/c"))
    assert(h:download("/etc/hostname", "{d}/e", {{ mode = "0640" }}))
""", self.inventory(self.node())))
        self.assertIn(f"ERR\ta\tfailed\trefusing to write through the symlink at {d}/a.part", out)
        self.assertIn(f"ERR\tb\tfailed\trefusing to write through the symlink at {d}/b", out)
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(os.stat(os.path.join(d, "c")).st_mode & 0o777, 0o600)  # whatever the umask
        self.assertEqual(os.stat(os.path.join(d, "e")).st_mode & 0o777, 0o640)  # the runbook's own

    def test_read_write_stat_exists_and_sudo_writes(self):
        d = tempfile.mkdtemp(prefix="engine-root-only-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)  # root-owned: the login user may look but not write
        self.ok(self.runbook(f"""
    local h = inv:host("n1")
    assert(h:write_file("/tmp/engine-wf-{os.getpid()}", "hello\\n"))
    assert(h:read_file("/tmp/engine-wf-{os.getpid()}") == "hello\\n")
    assert(h:exists("/tmp/engine-wf-{os.getpid()}") == true)
    assert(h:exists("/nonexistent/x") == false)
    local none, err = h:stat("/nonexistent/x")
    assert(none == nil and err == "not found", tostring(err))
    local r, err2 = h:write_file("{d}/manifest.yaml", "x")
    assert(r == nil and err2 == "permission denied", tostring(err2))
    assert(h:write_file("{d}/manifest.yaml", "kind: Pod\\n", {{ sudo = true, mode = "0600", owner = "root" }}))
    local st = assert(h:stat("{d}/manifest.yaml"))
    assert(st.uid == 0 and st.mode == 384, st.mode)
    local bad, err3 = h:read_file("{d}/manifest.yaml")
    assert(bad == nil and err3 == "permission denied", tostring(err3))
""", self.inventory(self.node())))
        self.assertEqual(open(f"{d}/manifest.yaml").read(), "kind: Pod\n")
        self.assertEqual(os.listdir(d), ["manifest.yaml"])
        os.remove(f"/tmp/engine-wf-{os.getpid()}")


if __name__ == "__main__":
    unittest.main()
