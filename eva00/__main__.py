from eva00.cli.main import main

raise SystemExit(main())
