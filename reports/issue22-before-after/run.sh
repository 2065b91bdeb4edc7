#!/bin/bash
# Every tool's output at a given checkout (arg 1), into arg 2.
set -u
SRC=$1; OUT=$2
cd $SRC
export PYTHONPATH=$SRC
PY=/work/main/.venv/bin/python
NH="$PY -m notify_harness"
export JWT_SECRET=$($PY -c "import secrets; print(secrets.token_urlsafe(48))")
rm -rf $OUT; mkdir -p $OUT
$NH contract --reports $OUT/r > $OUT/ref-contract.txt 2>&1; echo "exit $?" >> $OUT/ref-contract.txt
$NH faults --scope ci --reports $OUT/r > $OUT/ref-faults.txt 2>&1; echo "exit $?" >> $OUT/ref-faults.txt
$NH load --profile smoke --reports $OUT/r > $OUT/ref-load.txt 2>&1; echo "exit $?" >> $OUT/ref-load.txt
$NH compare --users 100 --rate 100 --duration 8 --broadcast-interval 1 --reports $OUT/r > $OUT/ref-compare.txt 2>&1; echo "exit $?" >> $OUT/ref-compare.txt
$PY -m examples.partial_server --port 8765 --heartbeat-interval 1 > $OUT/partial-server.log 2>&1 &
PARTIAL=$!
sleep 3
$NH contract --target-file examples/partial.toml --jwt-secret "$JWT_SECRET" --reports $OUT/r > $OUT/partial-contract.txt 2>&1; echo "exit $?" >> $OUT/partial-contract.txt
$NH load --target-file examples/partial.toml --jwt-secret "$JWT_SECRET" --scenario fanout --users 200 --rate 100 --duration 20 --broadcast-interval 2 --generator-workers 1 --server-pid $PARTIAL --reports $OUT/r > $OUT/partial-load.txt 2>&1; echo "exit $?" >> $OUT/partial-load.txt
$NH compare --target-file examples/partial.toml --jwt-secret "$JWT_SECRET" --users 100 --rate 100 --duration 8 --broadcast-interval 1 --reports $OUT/r > $OUT/partial-compare.txt 2>&1; echo "exit $?" >> $OUT/partial-compare.txt
$NH faults --target-file examples/partial.toml --jwt-secret "$JWT_SECRET" --scope ci --reports $OUT/r > $OUT/partial-faults.txt 2>&1; echo "exit $?" >> $OUT/partial-faults.txt
kill $PARTIAL; wait $PARTIAL 2>/dev/null
BROKEN_FAULT=faulty WS_HEARTBEAT_INTERVAL=1 $PY -m reference_server.tests.broken_server --port 8766 > $OUT/faulty-server.log 2>&1 &
FAULTY=$!
sleep 4
T="--target http://127.0.0.1:8766 --jwt-secret $JWT_SECRET --heartbeat-interval 1"
$NH contract $T --log $OUT/faulty-server.log --reports $OUT/r > $OUT/faulty-contract.txt 2>&1; echo "exit $?" >> $OUT/faulty-contract.txt
$NH faults $T --log $OUT/faulty-server.log --scope ci --reports $OUT/r > $OUT/faulty-faults.txt 2>&1; echo "exit $?" >> $OUT/faulty-faults.txt
kill $FAULTY; wait $FAULTY 2>/dev/null
echo done > $OUT/DONE
