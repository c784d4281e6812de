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

# Median, and "min-max", of column $2 (default 1) of the numbers in file $1.
median() { awk -v c="${2:-1}" '{print $c}' "$1" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
range() { awk -v c="${2:-1}" '{print $c}' "$1" | sort -g | awk '{v[NR]=$1} END {printf "%s-%s", v[1], v[NR]}'; }
