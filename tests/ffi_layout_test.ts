/**
 * The binding's struct layouts and constants against the C compiler's view of
 * the pinned quiche.h and the system headers: a small C program prints
 * sizeof/offsetof for every struct the binding reads or writes.
 */
import assert from "node:assert/strict";
import { runCProbe } from "./support/c_probe.ts";
import { CMsg, IoVec, LINUX, MMsgHdr } from "../ffi/libc.ts";
import { PathStats, RecvInfo, SendInfo, Stats } from "../ffi/quiche_constants.ts";

const HEADER_DIR = new URL("../.cache/libquiche/include/", import.meta.url).pathname;

const PROBE = `
#define _GNU_SOURCE
#include <stdio.h>
#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <netinet/udp.h>
#include "quiche.h"
#define S(t) printf("%s=%zu\\n", #t, sizeof(t))
#define O(t, f) printf("%s.%s=%zu\\n", #t, #f, offsetof(t, f))
#define C(n) printf("%s=%d\\n", #n, (int)(n))
int main(void) {
  S(quiche_recv_info); O(quiche_recv_info, from); O(quiche_recv_info, from_len);
  O(quiche_recv_info, to); O(quiche_recv_info, to_len);
  S(quiche_send_info); O(quiche_send_info, from); O(quiche_send_info, from_len);
  O(quiche_send_info, to); O(quiche_send_info, to_len); O(quiche_send_info, at);
  S(quiche_stats); O(quiche_stats, recv); O(quiche_stats, sent); O(quiche_stats, lost);
  O(quiche_stats, sent_bytes); O(quiche_stats, recv_bytes); O(quiche_stats, dgram_recv);
  O(quiche_stats, dgram_sent); O(quiche_stats, paths_count);
  S(quiche_path_stats); O(quiche_path_stats, local_addr); O(quiche_path_stats, peer_addr);
  O(quiche_path_stats, active); O(quiche_path_stats, lost); O(quiche_path_stats, rtt);
  O(quiche_path_stats, min_rtt); O(quiche_path_stats, cwnd); O(quiche_path_stats, pmtu);
  S(struct mmsghdr); O(struct mmsghdr, msg_hdr.msg_name); O(struct mmsghdr, msg_hdr.msg_namelen);
  O(struct mmsghdr, msg_hdr.msg_iov); O(struct mmsghdr, msg_hdr.msg_iovlen);
  O(struct mmsghdr, msg_hdr.msg_control); O(struct mmsghdr, msg_hdr.msg_controllen);
  O(struct mmsghdr, msg_hdr.msg_flags); O(struct mmsghdr, msg_len);
  S(struct iovec); O(struct iovec, iov_len);
  printf("CMSG_SPACE=%zu\\n", (size_t)CMSG_SPACE(sizeof(int)));
  printf("CMSG_LEN_U16=%zu\\n", (size_t)CMSG_LEN(sizeof(unsigned short)));
  C(AF_INET6); C(SOL_UDP); C(UDP_SEGMENT); C(UDP_GRO); C(SO_RCVBUFFORCE); C(IPV6_V6ONLY);
  C(MSG_DONTWAIT); C(MSG_TRUNC); C(SOCK_NONBLOCK); C(SOCK_CLOEXEC); C(EFD_NONBLOCK);
  return 0;
}
`;

Deno.test("struct layouts and constants match quiche.h and the system headers", async () => {
  const c = await runCProbe(PROBE, [HEADER_DIR]);
  const expected: Record<string, number> = {
    "quiche_recv_info": RecvInfo.size,
    "quiche_recv_info.from": RecvInfo.from,
    "quiche_recv_info.from_len": RecvInfo.fromLen,
    "quiche_recv_info.to": RecvInfo.to,
    "quiche_recv_info.to_len": RecvInfo.toLen,
    "quiche_send_info": SendInfo.size,
    "quiche_send_info.from": SendInfo.from,
    "quiche_send_info.from_len": SendInfo.fromLen,
    "quiche_send_info.to": SendInfo.to,
    "quiche_send_info.to_len": SendInfo.toLen,
    "quiche_send_info.at": SendInfo.at,
    "quiche_stats": Stats.size,
    "quiche_stats.recv": Stats.recv,
    "quiche_stats.sent": Stats.sent,
    "quiche_stats.lost": Stats.lost,
    "quiche_stats.sent_bytes": Stats.sentBytes,
    "quiche_stats.recv_bytes": Stats.recvBytes,
    "quiche_stats.dgram_recv": Stats.dgramRecv,
    "quiche_stats.dgram_sent": Stats.dgramSent,
    "quiche_stats.paths_count": Stats.pathsCount,
    "quiche_path_stats": PathStats.size,
    "quiche_path_stats.local_addr": PathStats.localAddr,
    "quiche_path_stats.peer_addr": PathStats.peerAddr,
    "quiche_path_stats.active": PathStats.active,
    "quiche_path_stats.lost": PathStats.lost,
    "quiche_path_stats.rtt": PathStats.rtt,
    "quiche_path_stats.min_rtt": PathStats.minRtt,
    "quiche_path_stats.cwnd": PathStats.cwnd,
    "quiche_path_stats.pmtu": PathStats.pmtu,
    "struct mmsghdr": MMsgHdr.size,
    "struct mmsghdr.msg_hdr.msg_name": MMsgHdr.name,
    "struct mmsghdr.msg_hdr.msg_namelen": MMsgHdr.nameLen,
    "struct mmsghdr.msg_hdr.msg_iov": MMsgHdr.iov,
    "struct mmsghdr.msg_hdr.msg_iovlen": MMsgHdr.iovLen,
    "struct mmsghdr.msg_hdr.msg_control": MMsgHdr.control,
    "struct mmsghdr.msg_hdr.msg_controllen": MMsgHdr.controlLen,
    "struct mmsghdr.msg_hdr.msg_flags": MMsgHdr.flags,
    "struct mmsghdr.msg_len": MMsgHdr.len,
    "struct iovec": IoVec.size,
    "struct iovec.iov_len": IoVec.len,
    "CMSG_SPACE": CMsg.space,
    "CMSG_LEN_U16": 18,
    "AF_INET6": LINUX.AF_INET6,
    "SOL_UDP": LINUX.SOL_UDP,
    "UDP_SEGMENT": LINUX.UDP_SEGMENT,
    "UDP_GRO": LINUX.UDP_GRO,
    "SO_RCVBUFFORCE": LINUX.SO_RCVBUFFORCE,
    "IPV6_V6ONLY": LINUX.IPV6_V6ONLY,
    "MSG_DONTWAIT": LINUX.MSG_DONTWAIT,
    "MSG_TRUNC": LINUX.MSG_TRUNC,
    "SOCK_NONBLOCK": LINUX.SOCK_NONBLOCK,
    "SOCK_CLOEXEC": LINUX.SOCK_CLOEXEC,
    "EFD_NONBLOCK": LINUX.EFD_NONBLOCK,
  };
  for (const [name, value] of Object.entries(expected)) {
    assert.equal(value, c[name], `${name}: binding says ${value}, C says ${c[name]}`);
  }
});
