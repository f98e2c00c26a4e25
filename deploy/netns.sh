#!/usr/bin/env bash
# Private test network: `netns.sh up PREFIX NAME...` makes one network namespace per NAME (PREFIX-NAME) with the
# address 10.231.0.(k+1) on eth0, all joined by a bridge inside a hub namespace (PREFIX-hub) — no address, route or
# interface is added to the host's own namespace, so only traffic between these namespaces flows. Each namespace gets
# an /etc/netns/PREFIX-NAME/hosts naming all the others (ip netns exec mounts it over /etc/hosts).
# `netns.sh down PREFIX NAME...` deletes them. Needs root and iproute2.
set -euo pipefail
action=$1 prefix=$2
shift 2
names=("$@")
hub="$prefix-hub"
case "$action" in
  up)
    ip netns add "$hub"
    ip -n "$hub" link add br0 type bridge
    ip -n "$hub" link set br0 up
    hosts="127.0.0.1 localhost"$'\n'
    for k in "${!names[@]}"; do hosts+="10.231.0.$((k + 2)) ${names[$k]}"$'\n'; done
    for k in "${!names[@]}"; do
      ns="$prefix-${names[$k]}"
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      ip link add "dbp$$h$k" netns "$hub" type veth peer name eth0 netns "$ns"
      ip -n "$hub" link set "dbp$$h$k" master br0 up
      ip -n "$ns" addr add "10.231.0.$((k + 2))/24" dev eth0
      ip -n "$ns" link set eth0 up
      mkdir -p "/etc/netns/$ns"
      printf '%s' "$hosts" > "/etc/netns/$ns/hosts"
    done
    ;;
  down)
    for name in "${names[@]}"; do
      ip netns del "$prefix-$name" 2>/dev/null || true
      rm -rf "/etc/netns/$prefix-$name"
    done
    ip netns del "$hub" 2>/dev/null || true
    ;;
  *) echo "usage: netns.sh up|down PREFIX NAME..." >&2; exit 2 ;;
esac
