# Shared by the benchmark scripts (sourced, not run).

# Installs GNU time (for peak RSS) when it is missing.
need_gnu_time() {
    if [ ! -x /usr/bin/time ]; then
        echo "bench: installing GNU time (peak RSS)" >&2
        if [ "$(id -u)" = 0 ]; then apt-get install -y -qq time >&2; else sudo apt-get install -y -qq time >&2; fi
    fi
}

# One line naming the machine the figures come from.
machine() {
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
}

# One measured run of "$@" in the working folder: appends "wall cpu rss_kb"
# to $1; its output is left in run.out and run.err.
measure() {
    local out=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o time.out "$@" > run.out 2> run.err || {
        echo "bench: failed: $*" >&2
        cat run.err >&2
        exit 1
    }
    awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' time.out >> "$out"
}

# Median, and "min-max", of column $2 (default 1) of the numbers in file $1.
median() { awk -v c="${2:-1}" '{print $c}' "$1" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
range() { awk -v c="${2:-1}" '{print $c}' "$1" | sort -g | awk '{v[NR]=$1} END {printf "%s-%s", v[1], v[NR]}'; }

# A DataJoint-format file store of about $3 objects for schema $2 in folder
# $1 (with its datajoint.json, MariaDB), written once and reused while its
# settings are the same: half the objects in the hash section (two rows per
# content), half in the schema section (one folder per row, as DataJoint
# writes npy), a fifth of the rows deleted, every orphan old enough to
# collect. Sets $fixture_args. Needs $target.
file_store_fixture() {
    local dir=$1 schema=$2 objects=$3
    mkdir -p "$dir/store"
    cat > "$dir/datajoint.json" <<JSON
{
  "database": {"host": "127.0.0.1", "port": 3306, "user": "djgc", "password": "djgc", "backend": "mysql"},
  "stores": {
    "default": "main",
    "main": {"protocol": "file", "location": "$dir/store", "subfolding": [2, 2]}
  }
}
JSON
    fixture_args="--hash-rows $objects --rows-per-content 2 --npy-rows $((objects / 2)) \
--folder-rows 0 --deleted-fraction 0.2 --young-fraction 0"
    if [ "$(cat "$dir/fixture.args" 2>/dev/null)" != "$fixture_args" ]; then
        rm -f "$dir/fixture.args"
        echo "bench: writing the fixture ($fixture_args)" >&2
        local start
        start=$(date +%s.%N)
        # shellcheck disable=SC2086
        (cd "$dir" && "$target/release/examples/djgc-fixture" "$schema" $fixture_args >&2)
        echo "bench: fixture written in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
        echo "$fixture_args" > "$dir/fixture.args"
    fi
}

# The datajoint.json of an S3 store `main` (the default, subfolding [2, 2])
# on MariaDB: endpoint $1 (plain HTTP), bucket $2, location $3, access key
# $4, secret key $5.
s3_config() {
    cat <<JSON
{
  "database": {"host": "127.0.0.1", "port": 3306, "user": "djgc", "password": "djgc", "backend": "mysql"},
  "stores": {
    "default": "main",
    "main": {"protocol": "s3", "endpoint": "$1", "bucket": "$2", "location": "$3",
             "access_key": "$4", "secret_key": "$5", "secure": false,
             "subfolding": [2, 2]}
  }
}
JSON
}
