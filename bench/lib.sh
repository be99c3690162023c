# Shared by the benchmark scripts (sourced after they define `log` and set `work`,
# `pids` and `KEEP_WORK`): stopping what they started, waiting, and reading wrk's output.

stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    if [[ "$KEEP_WORK" == 1 ]]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
}

# Waits up to $2 seconds for command $1 (a function or string) to succeed.
wait_for() {
    local what="$1" secs="$2" deadline=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || { log "timed out after ${secs}s waiting for $what"; return 1; }
        sleep 0.1
    done
}

# A wrk duration ("243.00us", "1.02ms", "1.10s", "2.00m") in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000;
        else if (u == "m") m = 60000000; else m = -1
        if (m < 0) print "NaN"; else printf "%.1f\n", n * m }'
}

# parse_wrk FILE: prints "STATUS RPS P50_US P99_US NOTE" (STATUS ok or FAILED).
parse_wrk() {
    local f="$1" rps p50 p99 non2xx errs
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$f")"
    p50="$(awk '$1 == "50%" {print $2}' "$f")"
    p99="$(awk '$1 == "99%" {print $2}' "$f")"
    non2xx="$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$f")"
    errs="$(awk '/Socket errors/ {sub(/^ *Socket errors: */, ""); gsub(/ /, ""); print}' "$f")"
    if [[ -n "$non2xx" ]]; then
        echo "FAILED - - - non-2xx:$non2xx(see:$(basename "$f"))"
    elif [[ -z "$rps" || -z "$p99" ]] || awk -v r="$rps" 'BEGIN {exit !(r + 0 == 0)}'; then
        echo "FAILED - - - no-result(see:$(basename "$f"))"
    else
        echo "ok $rps $(to_us "$p50") $(to_us "$p99") ${errs:+errors:$errs}"
    fi
}

# free_port: a loopback TCP port nothing listens on (the caller's `die` if none is found).
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# start_nginx NGINX TEMPLATE DIR UPSTREAM CPU: nginx from TEMPLATE (its @WORK@, @UPSTREAM@,
# @LISTEN@ and @USER@ filled in) in the foreground with DIR as its prefix, on CPU, listening
# on a free loopback port. Sets `nginx_port` and `nginx_pid` (also added to `pids`).
start_nginx() {
    local bin="$1" tmpl="$2" dir="$3" upstream="$4" cpu="$5" user_line="" m
    mkdir -p "$dir/tmp"
    nginx_port="$(free_port)"
    ((EUID == 0)) && user_line="user root;"
    sed -e "s|@WORK@|$dir|g" -e "s|@UPSTREAM@|$upstream|g" \
        -e "s|@LISTEN@|127.0.0.1:$nginx_port|g" -e "s|@USER@|$user_line|g" \
        "$tmpl" >"$dir/nginx.conf"
    # Drop temp paths of modules this nginx was built without.
    for m in fastcgi uwsgi scgi; do
        if "$bin" -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
            sed -i "/${m}_temp_path/d" "$dir/nginx.conf"
        fi
    done
    "$bin" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" ||
        die "nginx rejected $dir/nginx.conf"
    taskset -c "$cpu" "$bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
        >"$dir/stdout.log" 2>&1 &
    nginx_pid=$!
    pids+=("$nginx_pid")
}
