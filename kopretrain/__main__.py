from kopretrain.cli import main

raise SystemExit(main())
