fn main() {
    let (mut network, _) = digitnn::model::builtin().unwrap();
    for (i, path) in std::env::args().skip(1).enumerate() {
        let picture = image::open(&path).unwrap();
        let reading = digitnn::read::read_image(&mut network, &picture, &Default::default()).unwrap();
        println!("{path}: {}", serde_json::to_string(&reading).unwrap());
        let big = picture.resize(picture.width() * 6, picture.height() * 6, image::imageops::FilterType::Nearest);
        big.save(format!("/tmp/view{i}.png")).unwrap();
    }
}
