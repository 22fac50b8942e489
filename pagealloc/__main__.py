from pagealloc.cli import main

raise SystemExit(main())
