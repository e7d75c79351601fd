from bench.dataplane.run import main

main()
