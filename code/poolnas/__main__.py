from poolnas.cli import main

raise SystemExit(main())
