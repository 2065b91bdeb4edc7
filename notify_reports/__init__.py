"""What every tool's report shares: its folder and the command and environment it records
(`folder`), and the one HTML renderer with its base template (`render`)."""
