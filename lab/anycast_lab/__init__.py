"""The anycast.nva lab: ARM emulator (arm), hosts and networks (hosts), the two regions (regions: plan, fabric, routers, traffic)."""
