from autoannotator.cli import main

main()
