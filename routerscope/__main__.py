from routerscope.cli import main

raise SystemExit(main())
