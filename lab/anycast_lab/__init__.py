"""The anycast.nva lab: ARM emulator (arm), hosts and networks (hosts), the two-region fabric (net)."""
