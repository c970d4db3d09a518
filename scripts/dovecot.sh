# Sourced by scripts/test: make Debian's Dovecot IMAP server available for the email tests.
# The tests start their own throwaway server (tests/email_adapter/mailserver.py); this only
# installs the package when missing and, as root, the system user 'vmail' that owns test mail.
# SMALLWINS_DOVECOT may name another binary.
set -euo pipefail

if [ -z "${SMALLWINS_DOVECOT:-}" ]; then
  if [ ! -x /usr/sbin/dovecot ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "dovecot is not installed and I am not root: apt-get install dovecot-imapd, or set SMALLWINS_DOVECOT" >&2
      exit 1
    fi
    echo "installing dovecot-imapd from Debian's packages..." >&2
    apt-get update -qq >/dev/null
    # policy-rc.d may forbid starting the system service in containers; the tests start their own.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
  fi
  SMALLWINS_DOVECOT=/usr/sbin/dovecot
fi
if [ "$(id -u)" = 0 ] && ! id vmail >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin vmail
fi
export SMALLWINS_DOVECOT
echo "email tests use Dovecot at $SMALLWINS_DOVECOT" >&2
