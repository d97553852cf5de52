from ..data.prepare import main

main()
