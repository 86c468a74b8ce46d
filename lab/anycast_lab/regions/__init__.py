"""The lab's two Azure regions from one address plan: Route Server speakers, the ExpressRoute edge, on-premises, the VNet fabric, traffic."""
