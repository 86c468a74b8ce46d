"""Azure's convergence time, modelled at the ExpressRoute edge: updates reach on-premises late.

In Azure a route change crosses Route Server, the ExpressRoute gateway and the edge routers before on-premises sees it,
and on-premises keeps sending to the old path meanwhile; the lab's edge would pass it on in milliseconds. So every BGP
session from the edge to on-premises runs through this relay in the edge's namespace: an nftables redirect hands the
edge BIRD's connections to it (on-premises is passive, so the edge always connects), and it passes what the edge sends
after the delay and what on-premises sends at once. Both TCP legs are local, so the delay does not touch TCP's timers;
BGP keepalives are late too, far inside the hold time. The delay lives in a file read for every chunk, so it can change
while the lab runs, and a shorter delay never reorders what is queued:

    python -m anycast_lab.regions convergence-delay [SECONDS]     (show or set; 0 = none, the default)
"""
import argparse
import asyncio
import os
import socket
import struct
import subprocess
import time

from ..hosts.util import LabError
from . import plan, routers

RELAY_PORT = 1790
RELAY_MARK = 0x179  # the relay's own connections to on-premises skip the redirect
SO_ORIGINAL_DST = 80
NFT_TABLE = "anycast_lab_convergence"
MAX_DELAY = 120.0  # below BIRD's default hold time (240 s): the sessions stay up at any allowed delay


def delay_file(base):
    return os.path.join(base, "convergence_delay")


def read_delay(path):
    """The delay in seconds; 0 when the file is missing or unreadable (never stall a session on a bad file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return min(max(float(handle.read().strip() or 0), 0.0), MAX_DELAY)
    except (OSError, ValueError):
        return 0.0


def write_delay(base, seconds):
    if not 0 <= seconds <= MAX_DELAY:
        raise LabError(f"convergence delay: {seconds} s is outside 0-{MAX_DELAY:g} s")
    path = delay_file(base)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(f"{seconds:g}\n")
    os.replace(path + ".tmp", path)


def nft_ruleset():
    """The redirect of the edge's BGP connections toward on-premises (every region's link) to the relay."""
    onprem = ", ".join(region.onprem_addr("onprem") for region in plan.REGIONS)
    return (f"table ip {NFT_TABLE} {{\n  chain out {{\n    type nat hook output priority -100;\n"
            f"    meta mark != {RELAY_MARK:#x} tcp dport 179 ip daddr {{ {onprem} }} redirect to :{RELAY_PORT}\n  }}\n}}\n")


def redirect_installed():
    proc = subprocess.run(["ip", "netns", "exec", plan.EDGE_NS, "nft", "list", "table", "ip", NFT_TABLE],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0


def install_redirect(base=None):
    """Put the redirect in place and make the edge's on-premises sessions connect again, now through the relay.

    Only when it is missing (a fresh edge namespace): a lab brought up again keeps its sessions."""
    if redirect_installed():
        return False
    subprocess.run(["ip", "netns", "exec", plan.EDGE_NS, "nft", "-f", "-"], input=nft_ruleset(), text=True, check=True,
                   capture_output=True)
    for region in plan.REGIONS:
        routers.birdc("er", "restart", f"op_{region.short}", base=base, check=False)
    return True


class Relay:
    """One accepted connection of the edge BIRD, relayed to where it was going."""

    def __init__(self, path):
        self.path = path

    async def handle(self, edge_reader, edge_writer):
        sock = edge_writer.get_extra_info("socket")
        port, raw = struct.unpack("!2xH4s8x", sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16))
        source = edge_writer.get_extra_info("peername")[0]
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, RELAY_MARK)
        upstream.bind((source, 0))  # on-premises sees the edge's own address, as without the relay
        upstream.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(upstream, (socket.inet_ntoa(raw), port))
        except OSError:
            upstream.close()
            edge_writer.close()
            return
        onprem_reader, onprem_writer = await asyncio.open_connection(sock=upstream)
        await asyncio.gather(self.late(edge_reader, onprem_writer), self.at_once(onprem_reader, edge_writer),
                             return_exceptions=True)
        for writer in (edge_writer, onprem_writer):
            writer.close()

    async def late(self, reader, writer):
        """Edge to on-premises: each chunk leaves `delay` after it came, in order; the end of the stream too."""
        queue = asyncio.Queue()

        async def sender():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if data is None:
                    writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(sender())
        last_due = 0.0
        while True:
            data = await reader.read(65536)
            last_due = max(last_due, time.monotonic() + read_delay(self.path))
            queue.put_nowait((last_due, data or None))
            if not data:
                break
        await task

    @staticmethod
    async def at_once(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()


async def serve(path):
    server = await asyncio.start_server(Relay(path).handle, "0.0.0.0", RELAY_PORT, reuse_address=True)
    async with server:
        await server.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anycast_lab.regions.convergence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay-file", required=True, help="the file that holds the delay in seconds")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.delay_file))


if __name__ == "__main__":
    main()
