from eva00.cli import main

raise SystemExit(main())
