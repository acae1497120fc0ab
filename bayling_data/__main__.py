from bayling_data.cli import main

raise SystemExit(main())
