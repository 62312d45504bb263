from genapi.local.server import main

if __name__ == "__main__":
    main()
