"""A real Dovecot IMAP server for tests, from Debian's packages: a throwaway config, user and
Maildir under a temp folder, listening on free loopback ports (plain/STARTTLS and implicit TLS).

Started in the foreground (``dovecot -F``) as a child of the test process, so stopping it is
killing our own child. As root, mail is owned by the system user ``vmail`` (created when
missing, as ``scripts/dovecot.sh`` does); as another user, Dovecot runs as that user.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER, PASSWORD = "news", "reply-secret"
#: The variable the tests' plugins.toml names for the IMAP password (password_env).
PASSWORD_ENV = "SW_TEST_IMAP_PASSWORD"
#: Users written into the passwd-file at start: Dovecot re-reads it only when its mtime changes,
#: which a second write within the same second does not do.
USERS = [USER] + [f"reader{n}" for n in range(1, 201)]

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u/Maildir
mailbox_idle_check_interval = 1 secs
first_valid_uid = 1
{unprivileged}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
  {login_chroot}
}}
"""

UNPRIVILEGED = """
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
service anvil {{
  chroot =
}}
"""


def dovecot_binary() -> str:
    """Debian's dovecot; a test run in CI fails without it, elsewhere the tests skip."""
    found = os.environ.get("SMALLWINS_DOVECOT") or shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(found).exists():
        message = "dovecot is not installed: run the tests through ./scripts/test (it installs dovecot-imapd)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mail_owner() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"], check=True)
        entry = pwd.getpwnam("vmail")
    return entry.pw_uid, entry.pw_gid


def make_maildir(root: Path, user: str, uid: int, gid: int) -> None:
    home = root / "mail" / user
    for sub in ("new", "cur", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    for path in [root / "mail", home, *home.rglob("*")]:
        os.chown(path, uid, gid)


def self_signed(folder: Path) -> Path:
    """A certificate for 127.0.0.1 (openssl); the returned PEM is what a client should trust."""
    folder.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder / "cert.pem"


@dataclass
class Dovecot:
    root: Path
    port: int
    tls_port: int
    ca_file: Path
    process: subprocess.Popen[bytes]
    uid: int
    gid: int
    binary: str
    delivered: int = field(default=0)

    def maildir(self, user: str = USER) -> Path:
        return self.root / "mail" / user / "Maildir"

    def add_user(self, user: str) -> str:
        """A new mailbox (each test gets its own) for one of the users the server knows."""
        if user not in USERS:
            raise ValueError(f"{user} is not among the server's users {USERS[0]}..{USERS[-1]}")
        make_maildir(self.root, user, self.uid, self.gid)
        return user

    def deliver(self, raw: bytes, user: str = USER) -> None:
        """Deliver as an MTA does: write into tmp/, then rename into new/ (atomic)."""
        self.delivered += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self.delivered}.smallwins-test"
        tmp = self.maildir(user) / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.uid, self.gid)
        os.rename(tmp, self.maildir(user) / "new" / name)

    def doveadm(self, *args: str) -> str:
        binary = shutil.which("doveadm") or str(Path(self.binary).parent.parent / "bin" / "doveadm")
        done = subprocess.run([binary, "-c", str(self.root / "dovecot.conf"), *args], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"doveadm {' '.join(args)}: {done.stderr}")
        return done.stdout

    def set_uidvalidity(self, user: str, value: int, folder: str = "INBOX") -> None:
        """What a restored or rebuilt mailbox looks like to a client: old UIDs are void."""
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dovecot() -> Dovecot:
    binary = dovecot_binary()
    root = Path(tempfile.mkdtemp(prefix="smallwins-dovecot-"))
    root.chmod(0o755)  # Dovecot's auth process runs as another user and must read ROOT/users
    uid, gid = mail_owner()
    for sub in ("run", "state"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    make_maildir(root, USER, uid, gid)
    (root / "users").write_text("".join(f"{user}:{{PLAIN}}{PASSWORD}::::::\n" for user in USERS))
    ca_file = self_signed(root / "tls")
    port, tls_port = free_port(), free_port()
    unprivileged, login_chroot = "", ""
    if os.geteuid() != 0:
        me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        unprivileged, login_chroot = UNPRIVILEGED.format(user=me, group=group), "chroot ="
    (root / "dovecot.conf").write_text(
        CONFIG.format(
            root=root, uid=uid, gid=gid, port=port, tls_port=tls_port,
            unprivileged=unprivileged, login_chroot=login_chroot,
        )
    )  # fmt: skip
    process = subprocess.Popen([binary, "-F", "-c", str(root / "dovecot.conf")], stderr=subprocess.PIPE)
    server = Dovecot(root, port, tls_port, ca_file, process, uid, gid, binary)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"dovecot exited ({process.returncode}): {err}\n{server.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            socket.create_connection(("127.0.0.1", tls_port), 0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"dovecot did not come up on 127.0.0.1:{port}; log:\n{server.log()}")


def remove(server: Dovecot) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
