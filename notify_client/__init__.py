"""The one client of the notification protocol: WebSocket streams (asyncio and blocking), SSE
streams and the driver API. It takes the contract from `notify_contract` only."""
