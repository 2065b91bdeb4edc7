"""Other load generators, for `python -m loadtests.generators`: each holds streams to one URL
until SIGTERM and then writes what it counted (`--result`) as JSON.

They are what the toolkit's generator is measured against, not part of it: a plain asyncio
python-websockets client as a user would write one, and a floor that only reads the bytes.
k6 runs its script here (`k6_streams.js`); Artillery's script is written for each run by
`loadtests.generators`, with the run's target, tokens and timing.
"""
