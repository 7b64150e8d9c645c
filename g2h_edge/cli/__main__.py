from g2h_edge.cli import main

main()
