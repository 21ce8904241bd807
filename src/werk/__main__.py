from werk.cli import main

raise SystemExit(main())
