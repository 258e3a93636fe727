#!/bin/sh
# The login shell of a sliver account under the enforcing backend (sshd runs it as the sliver's
# uid with HOME=<slivers>/<login>/home/<login>). It writes its own pid into every cgroup.procs
# file the node manager listed in <sliver>/etc/cgroup.procs (owned by the sliver's uid), then
# becomes the shell: the login session and all it starts count against the sliver's limits.
# A login that cannot join is refused rather than run unlimited.
sliver=$(dirname "$(dirname "$HOME")")
if [ -f "$sliver/etc/cgroup.procs" ]; then
    while read -r procs; do
        if ! echo $$ 2>/dev/null > "$procs"; then
            echo "sfa-sliver-shell: cannot join the sliver's cgroup $procs; login refused" >&2
            exit 1
        fi
    done < "$sliver/etc/cgroup.procs"
fi
if [ "$1" = "-c" ]; then
    exec /bin/sh -c "$2"
fi
exec /bin/sh -l
