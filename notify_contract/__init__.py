"""The notification contract as data: the oracle every judge in this project takes it from.

`docs/contract.md` says it in words and `asyncapi.yaml` beside this file in AsyncAPI 3.0; this
package holds the same facts for code (paths, frame types, close codes and what a client does
after each, the contract's settings and their defaults, the rules and their grades, the frame
schemas, token minting and the reconnect policy). It sits at the bottom of the dependency graph:
the reference server may import it; it imports nothing of this project.
"""
