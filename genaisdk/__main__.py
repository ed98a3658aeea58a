from genaisdk.cli import main

main()
