"""Starting and stopping real processes: redis-server, reference servers, nginx.

It launches the reference server as a program and never imports it, so the judges built on it
(the contract suite, the load and fault tools) stay independent of the server they judge.
"""
