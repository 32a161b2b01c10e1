#!/usr/bin/env bash
# Run a command inside the repository's own virtual environment (.venv), creating it
# and installing ccx-tui into it first when needed. Works where the system Python
# refuses `pip install` outside a venv (PEP 668: Debian 12, Ubuntu 23.04+).
#
#   tools/in-venv.sh ccx-tui 'make test' 'npm run dev'    # the app
#   tools/in-venv.sh --test python -m pytest             # the tests
#   tools/in-venv.sh --dev mypy                          # lint and type tools too
#
# The install is redone only when pyproject.toml or the extra changes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CCX_TUI_VENV:-$repo/.venv}"

extra=""
case "${1:-}" in
    --test) extra="[test]"; shift ;;
    --dev) extra="[dev]"; shift ;;
esac
if [ $# -eq 0 ]; then
    echo "usage: tools/in-venv.sh [--test|--dev] COMMAND [ARG...]" >&2
    exit 2
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "in-venv: $python not found: install Python 3.11 or newer" >&2
    exit 2
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "in-venv: ccx-tui needs Python 3.11 or newer ($python is $("$python" -V 2>&1))" >&2
    exit 2
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv's pip bootstrap separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "in-venv: installing python3-venv (apt-get)" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$minor-venv" \
                >/dev/null 2>&1 \
                || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$venv"
            "$python" -m venv "$venv"
        else
            echo "in-venv: '$python -m venv' failed: install your system's venv package" \
                "(Debian/Ubuntu: sudo apt-get install python3-venv) and run this again" >&2
            exit 2
        fi
    fi
fi

stamp="$venv/.ccx-tui-installed${extra//[\[\]]/-}"
want="$(sha256sum < "$repo/pyproject.toml" | cut -c1-64)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "in-venv: installing ccx-tui$extra into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo$extra"
    echo "$want" > "$stamp"
fi

export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
exec "$@"
